"""Parts of the CaloGAN-geometry shower stage; ``simulators.calorimeter`` is its public front."""
