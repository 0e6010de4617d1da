"""WHAT is computed: the method registry, the meta-learner (objective and meta-gradient), backbones."""
