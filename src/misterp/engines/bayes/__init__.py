"""Bayesian multilevel regression with rstanarm's ``stan_glmer`` defaults, on cells.

Priors (rstanarm 2.21.3's defaults, read from its source, tag v2.21.3; each can be changed):

- intercept of the centred predictors ~ normal(0, 2.5); the reported intercept
  is that one minus x-bar' beta (continuous.stan:263-265, data_block.R:45-63);
- coefficient k ~ normal(0, 2.5 / sd(x_k)), with means and sds over
  respondents (each cell weighted by its respondents, N - 1 in the sd;
  stan_glm.fit.R:255-269);
- a gaussian outcome scales by sd(y) (N - 1): the intercept's prior is
  normal(mean(y), 2.5 sd(y)) (stan_glm.fit.R:147-153, 246-251), the
  coefficients' 2.5 sd(y) / sd(x_k), and the residual sd is
  sigma = sd(y) * exponential(1) (stan_glm.fit.R:252-253, continuous.stan:110-116);
  binomial and poisson priors are not scaled by the outcome;
- decov (regularization, concentration, shape, scale 1): per term
  tau ~ gamma(1, 1); a random intercept's sd is scale * tau, times sigma for
  a gaussian (continuous.stan:119-122, common_functions.stan:31-32; not for
  binomial or poisson, binomial.stan:43, count.stan:64); a term with K effects
  has trace K (scale tau sigma)^2, split into variances by a Dirichlet(1)
  simplex, and LKJ(1) correlations (common_functions.stan:36-65, 144-160).

Sampling: NumPyro's NUTS, 4 chains x (1,000 warmup + 1,000 draws),
target acceptance 0.95, maximum tree depth 15, an explicit seed; float64
unless ``float64=False``. rstanarm samples b = sd * z with z ~ N(0, 1)
(``parameterization="noncentred"``); by default we sample the same posterior
in whitened coordinates built from a pilot Laplace fit (:mod:`.whitening`),
which removes the funnels and ridges that make rstanarm's runs slow and
divergent. On the CPU the chains run side by side, one XLA device each.
A gaussian likelihood reads the cells' sufficient statistics (:mod:`.moments`)
where they cost less than the cells, as with a continuous covariate, where
every respondent is a cell: the same log density, a fraction of the work.

The package: :mod:`.engine` (settings, sampling), :mod:`.model` (the NumPyro
model and its data), :mod:`.moments`, :mod:`.fit` (BayesFit) and
:mod:`.inference_data` (ArviZ); whitening, diagnostics and JAX's settings
are the engines' shared modules beside it.

Example
-------
>>> import pandas as pd, warnings
>>> from misterp import Frame, MisterpWarning, Survey, cell_draws, poststratify, prepare
>>> data = pd.DataFrame({"y": [1, 0, 1, 1, 0, 0, 1, 0] * 5, "g": list("aabbccdd") * 5})
>>> frame = Frame(pd.DataFrame({"g": list("abcd"), "N": [1, 2, 3, 4]}), "N")
>>> cells, _ = prepare(Survey(data, "y"), frame, "y ~ (1|g)")
>>> with warnings.catch_warnings():  # 2 x 100 draws: too few for the ESS check, enough for an example
...     warnings.simplefilter("ignore", MisterpWarning)
...     fit = BayesEngine(chains=2, warmup=100, draws=100, seed=1, progress=False).fit(cells)
>>> fit.samples["sigma"].shape
(2, 100, 1)
>>> poststratify(cell_draws(fit, frame), frame).table["interval"].item()
'posterior central 95%'
"""

from .engine import BayesEngine, Priors
from .fit import BayesFit
from .model import model_data

__all__ = ["BayesEngine", "BayesFit", "Priors", "model_data"]
