// Command dlib2onnx converts dlib's face-recognition network
// (dlib_face_recognition_resnet_model_v1.dat) to an ONNX model that the
// face classifier runs. scripts/fetch-models.sh runs it.
//
//	dlib2onnx -in dlib_face_recognition_resnet_model_v1.dat -out dlib_face.onnx
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/elastiq/elastiq/services/worker/classify/dlibnet"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "dlib2onnx:", err)
		os.Exit(1)
	}
}

func run(_ context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("dlib2onnx", flag.ContinueOnError)
	fs.SetOutput(stderr)
	in := fs.String("in", "", "the dlib network file (.dat)")
	out := fs.String("out", "", "the ONNX model to write")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *in == "" || *out == "" {
		return errors.New("both -in and -out are needed")
	}
	data, err := os.ReadFile(*in)
	if err != nil {
		return err
	}
	net, err := dlibnet.Read(data)
	if err != nil {
		return fmt.Errorf("%s: %w", *in, err)
	}
	model, err := net.ONNX()
	if err != nil {
		return fmt.Errorf("%s: %w", *in, err)
	}
	tmp := *out + ".tmp"
	if err := os.WriteFile(tmp, model, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, *out)
}
