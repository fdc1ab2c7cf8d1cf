//go:build !amd64

package ortenv

// FlushDenormals does nothing on this architecture: only amd64's MXCSR is
// set here; elsewhere ONNX Runtime's session option is all there is.
func FlushDenormals() (restore func()) { return func() {} }
