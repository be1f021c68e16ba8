//go:build awssdk

package main

// Built with -tags awssdk, savefloor links the AWS SDK packages that ckpt's
// S3 repositories use (pkg/storage/s3store): Go initialises every package a
// program links, so without arguments it then exits after what the SDK
// costs every ckpt process, local repository or not.
import (
	_ "github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	_ "github.com/aws/aws-sdk-go-v2/aws/retry"
	_ "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	_ "github.com/aws/aws-sdk-go-v2/config"
	_ "github.com/aws/aws-sdk-go-v2/service/s3"
)
