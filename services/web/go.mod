module github.com/elastiq/elastiq/services/web

go 1.26

require github.com/elastiq/elastiq/services/elastiq v0.0.0-00010101000000-000000000000

replace github.com/elastiq/elastiq/services/elastiq => ../elastiq
