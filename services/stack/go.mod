module github.com/elastiq/elastiq/services/stack

go 1.26

require (
	github.com/elastiq/elastiq/services/classify v0.0.0-00010101000000-000000000000
	github.com/elastiq/elastiq/services/elastiq v0.0.0-00010101000000-000000000000
	github.com/elastiq/elastiq/services/scaler v0.0.0-00010101000000-000000000000
	github.com/elastiq/elastiq/services/web v0.0.0-00010101000000-000000000000
	github.com/elastiq/elastiq/services/worker v0.0.0-00010101000000-000000000000
)

require github.com/yalue/onnxruntime_go v1.27.0 // indirect

replace github.com/elastiq/elastiq/services/elastiq => ../elastiq

replace github.com/elastiq/elastiq/services/classify => ../classify

replace github.com/elastiq/elastiq/services/web => ../web

replace github.com/elastiq/elastiq/services/worker => ../worker

replace github.com/elastiq/elastiq/services/scaler => ../scaler
