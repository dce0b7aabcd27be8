// TussModels module.
