module weir

go 1.25
