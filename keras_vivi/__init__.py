"""keras_vivi: image representations learned from videos in the wild."""
