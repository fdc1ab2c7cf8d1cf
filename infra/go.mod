module github.com/elastiq/elastiq/infra

go 1.26
