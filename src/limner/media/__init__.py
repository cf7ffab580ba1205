"""Media files: encoding outputs into real files and checking inputs before decoding them."""
