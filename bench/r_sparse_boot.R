# lme4's bootMer on the county model (bench/sparse.py --whole county-boot --with-r): glmer, then
# bootMer(use.u = TRUE) with a few refits, timed, for the seconds per refit.
#   Rscript bench/r_sparse_boot.R [nsim]
suppressPackageStartupMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
nsim <- if (length(args)) as.integer(args[1]) else 5
county <- read.csv("tests/fixtures/sparse_county.csv", stringsAsFactors = FALSE)
fit_s <- system.time(
  fit <- glmer(cbind(y, n - y) ~ male + (1 | county) + (1 | state) + (1 | age) + (1 | eth),
               data = county, family = binomial)
)[["elapsed"]]
boot_s <- system.time(
  b <- bootMer(fit, function(m) fixef(m), nsim = nsim, use.u = TRUE, seed = 1)
)[["elapsed"]]
cat(sprintf("glmer %.2f s; bootMer %d refits %.2f s (%.2f s a refit) (R %s, lme4 %s)\n", fit_s, nsim, boot_s,
            boot_s / nsim, getRversion(), packageVersion("lme4")))
