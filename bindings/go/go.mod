module ckring.dev/ckring

go 1.19
