package classify

import (
	"flag"
	"strings"
)

// RegisterFlags adds the classifier's flags to fs, with c's current values
// as their defaults; parsing fs writes into c. Every program that classifies
// (the embedded all-in-one and the distributed worker) takes the same flags.
// Call Validate after parsing.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Backend, "classifier", c.Backend, "classifier backend: face, exec or onnx")
	fs.StringVar(&c.ModelDir, "models", c.ModelDir, "folder of the ONNX Runtime library and models (scripts/fetch-models.sh)")
	fs.StringVar(&c.Gallery, "gallery", c.Gallery, "gallery of enrolled faces: <Label>/*.jpg, or images + labels.csv")
	fs.StringVar(&c.CacheDir, "gallery-cache", c.CacheDir, "folder caching the gallery's embeddings (empty: <models>/cache)")
	fs.Float64Var(&c.Threshold, "threshold", c.Threshold, "least cosine similarity to answer a known face")
	fs.Float64Var(&c.Certain, "certain", c.Certain,
		"cosine similarity from which the nearest person is named whatever the face's z (below it, a name needs the calibrated least z)")
	fs.Float64Var(&c.FalseMatchRate, "false-match-rate", c.FalseMatchRate,
		"share of faces of people not enrolled that the least z is calibrated to name (0: no z rule, the threshold alone decides)")
	fs.IntVar(&c.Sessions, "sessions", c.Sessions, "images classified at once (one model session and OS thread each)")
	fs.Int64Var(&c.DecodeBudget, "decode-budget", c.DecodeBudget,
		"bytes decoded images may hold at once: decodes wait for room, and an image needing more fails (0: no bound)")
	fs.Var((*commandFlag)(&c.Command), "exec-command",
		"`command` run per image by the exec classifier, split on spaces; {} is the image's path, e.g. \"python3 face_recognition.py {}\"")
	fs.DurationVar(&c.Timeout, "exec-timeout", c.Timeout, "time limit of one exec classification")
	fs.StringVar(&c.ONNX.Model, "onnx-model", c.ONNX.Model, "model file of the onnx classifier")
	fs.StringVar(&c.ONNX.Labels, "onnx-labels", c.ONNX.Labels, "labels file of the onnx classifier, one per line")
	fs.StringVar(&c.ONNX.Layout, "onnx-layout", c.ONNX.Layout, "input layout of the onnx classifier: NCHW or NHWC")
}

// commandFlag is Config.Command as a flag: the words of one string.
type commandFlag []string

func (f *commandFlag) String() string {
	if f == nil {
		return ""
	}
	return strings.Join(*f, " ")
}

func (f *commandFlag) Set(s string) error {
	*f = strings.Fields(s)
	return nil
}
