// TussPipeline module.
