"""Model files in and out: the tokenmix folder format (:mod:`.checkpoint`), Hugging Face FNet weights
(:mod:`.huggingface`) and ONNX (:mod:`.onnx`)."""
