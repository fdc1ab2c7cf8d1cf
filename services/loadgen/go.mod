module github.com/elastiq/elastiq/services/loadgen

go 1.26
