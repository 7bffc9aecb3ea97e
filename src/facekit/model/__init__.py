"""The model stage: anchors from a pipeline config, checks of a frozen graph before the
Bonnet compiler, and the model bundle the training stage hands to the deploy stage.

config reads pipeline.config, anchors computes the SSD anchor table, graphcheck checks
a frozen graph, labels reads a label map, bundle makes and verifies bundles (Python
3.5, standard library only: the Vision Kit runs it). Nothing heavy is imported here.
"""
