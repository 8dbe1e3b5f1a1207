module intercept.test/supervised

go 1.19
