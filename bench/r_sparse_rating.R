# lme4 on the rating design (bench/sparse.py --whole rating --with-r): read, lmer (REML),
# predictions and the estimates by unit, as misterp fit does them; prints the lmer call's seconds.
suppressPackageStartupMessages(library(lme4))
data <- read.csv("tests/fixtures/sparse_rating.csv", stringsAsFactors = FALSE)
seconds <- system.time(
  fit <- lmer(y ~ x + (1 | rater) + (1 | rated) + (1 | unit:x), data = data, REML = TRUE)
)[["elapsed"]]
by_unit <- tapply(predict(fit), data$unit, mean)
cat(sprintf("lmer %.2f s (R %s, lme4 %s)\n", seconds, getRversion(), packageVersion("lme4")))
