module detect

go 1.25

require weir v0.0.0

replace weir => ../../../../guest-sdk/go
