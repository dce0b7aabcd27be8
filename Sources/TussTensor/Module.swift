// TussTensor module.
