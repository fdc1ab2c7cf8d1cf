//go:build amd64

package ortenv

/*
#include <xmmintrin.h>

// Set FTZ (bit 15) and DAZ (bit 6) in MXCSR; return the old value.
static unsigned int elastiq_ftz_daz_on(void) {
	unsigned int old = _mm_getcsr();
	_mm_setcsr(old | 0x8040);
	return old;
}

static void elastiq_set_mxcsr(unsigned int v) { _mm_setcsr(v); }
*/
import "C"

// FlushDenormals turns on flush-to-zero and denormals-are-zero for the
// calling OS thread and returns the function that restores the previous
// mode. Call both on a goroutine locked to its thread (runtime.LockOSThread).
//
// ONNX Runtime's session option session.set_denormal_as_zero covers its
// thread-pool threads, but the calling thread only for the first session
// created in the process (see onnxruntime_session_options_config_keys.h).
// With one intra-op thread every kernel runs on the calling thread, so each
// session-owning thread sets the mode itself.
func FlushDenormals() (restore func()) {
	old := C.elastiq_ftz_daz_on()
	return func() { C.elastiq_set_mxcsr(old) }
}
