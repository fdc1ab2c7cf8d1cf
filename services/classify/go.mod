module github.com/elastiq/elastiq/services/classify

go 1.26

require github.com/yalue/onnxruntime_go v1.27.0

replace github.com/elastiq/elastiq/services/elastiq => ../elastiq
