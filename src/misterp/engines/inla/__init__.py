"""The inla engine's parts (Rue, Martino and Chopin 2009). So far: where to evaluate the hyperparameters'
posterior and with what weight (``design``); the posterior itself, the draws and the engine come next."""

from .design import Design, IntegrationPoints, design, fractional_factorial, integration_points

__all__ = ["Design", "IntegrationPoints", "design", "fractional_factorial", "integration_points"]
