module github.com/elastiq/elastiq/services/worker

go 1.26

require github.com/elastiq/elastiq/services/elastiq v0.0.0-00010101000000-000000000000

replace github.com/elastiq/elastiq/services/elastiq => ../elastiq

replace github.com/elastiq/elastiq/services/classify => ../classify
