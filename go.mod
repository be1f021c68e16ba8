module github.com/ckpt-dev/ckpt

go 1.26.0

require (
	github.com/adrg/xdg v0.5.3
	github.com/google/renameio/v2 v2.0.2
	github.com/gosimple/slug v1.15.0
	github.com/rogpeppe/go-internal v1.16.0
	github.com/spf13/cobra v1.10.2
	golang.org/x/sys v0.49.0
)

require (
	github.com/gosimple/unidecode v1.0.1 // indirect
	github.com/inconshreveable/mousetrap v1.1.0 // indirect
	github.com/spf13/pflag v1.0.9 // indirect
	golang.org/x/tools v0.26.0 // indirect
)
