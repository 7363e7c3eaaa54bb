package main

// Blank imports keep the chosen dependencies in go.mod while the packages
// that use them are being written. Remove once each is imported for real.
import (
	_ "github.com/labstack/echo/v4"
	_ "github.com/lestrrat-go/jwx/v2/jwt"
	_ "go.etcd.io/bbolt"
)

func main() {}
