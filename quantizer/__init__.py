"""Post-training quantization of a float model, above the passes: the calibration samples
checked against the model (samples.py), the float model run over them to measure each
quantized tensor's range (statistics.py), and the accuracy of the quantized model against
the float one on the same samples (report.py); plan.py puts them in order for the driver.
The graph rewrite itself is the quantize pass (passes/quantize.py)."""
