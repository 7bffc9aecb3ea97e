"""The model stage: from a trained SSD to the bundle the deploy stage copies to the kits.

  config        pipeline.config parsed as the trainer does it, and the SSD fields checks need
  anchors       the SSD anchor table of an ssd_anchor_generator (numpy)
  anchors_file  the one reader of anchors.txt (bundling and the kit's decoder share it)
  graphcheck    a frozen graph checked before the Bonnet compiler runs
  labels        class names from a label_map.pbtxt
  bundle        model bundles: made, versioned by content, verified against manifest.json
  versions      installed package versions, from their metadata
  progress      where a training run is (`facekit model progress`)
  errors        ModelError and its kinds

bundle, anchors_file and errors also run on the Vision Kit (`facekit model verify`, the
detector): Python 3.5, standard library only. Nothing heavy is imported here.
"""
