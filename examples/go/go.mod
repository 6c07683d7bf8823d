module ckring.dev/examples

go 1.19

require ckring.dev/ckring v0.0.0

replace ckring.dev/ckring => ../../bindings/go
