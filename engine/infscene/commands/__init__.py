"""The `infscene` command line, the top layer: main.py (`infscene`, its `sr` and `info`, and the entry point), train.py
(`infscene train`), serve.py (`infscene serve`) and iceplant.py (`infscene iceplant`). Each parses its flags and
drives the library below; none is imported by it."""
