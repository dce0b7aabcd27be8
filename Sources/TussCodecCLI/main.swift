print("tuss-codec")
