module github.com/hlfs/hlfs

go 1.26.8

require (
	github.com/golang/snappy v0.0.4
	github.com/google/btree v1.1.3
	github.com/pojntfx/go-nbd v0.3.2
	github.com/stretchr/testify v1.9.0
)

require (
	github.com/davecgh/go-spew v1.1.1 // indirect
	github.com/pmezard/go-difflib v1.0.0 // indirect
	gopkg.in/yaml.v3 v3.0.1 // indirect
)
