module github.com/elastiq/elastiq/services/elastiq

go 1.26
