# lme4 on the county slope model (bench/sparse.py --whole slopes --with-r): glmer and lmer with a
# correlated (1 + x | county) over 3,000 counties, on the 45,000 respondent rows; prints each fit's seconds.
suppressPackageStartupMessages(library(lme4))
data <- read.csv("tests/fixtures/sparse_slopes.csv", stringsAsFactors = FALSE)
g <- system.time(glmer(y ~ x + (1 + x | county) + (1 | state), data = data, family = binomial))[["elapsed"]]
l <- system.time(lmer(score ~ x + (1 + x | county) + (1 | state), data = data))[["elapsed"]]
cat(sprintf("glmer %.2f s, lmer %.2f s (R %s, lme4 %s)\n", g, l, getRversion(), packageVersion("lme4")))
