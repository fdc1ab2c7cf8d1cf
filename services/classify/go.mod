module github.com/elastiq/elastiq/services/classify

go 1.26

require (
	github.com/elastiq/elastiq/services/elastiq v0.0.0-00010101000000-000000000000
	github.com/yalue/onnxruntime_go v1.27.0
)

replace github.com/elastiq/elastiq/services/elastiq => ../elastiq
