# rstanarm::stan_glmer on the continuous-covariate slope model of bench/bayes_continuous.py:
#   y ~ ses + sx + (1 + ses | school), gaussian, rstanarm's defaults, 4 chains, 2 at a time.
# Reads each data set's <prefix>_survey.csv and <prefix>_frame.csv (bench/bayes_continuous.py
# --write made them: tests/fixtures/hsb_sim, and hsb82 where it was asked to put mlmRev's Hsb82),
# times the fit (stan_glmer alone, and the whole script so far) and writes, per data set <name>
# (the prefix's last part):
#   bench/r_stan_hsb_times.csv                  task, seconds (stan_glmer), whole, versions
#   tests/fixtures/<name>_stan_groups.csv       per school: the posterior mean and sd of the
#                                               frame-weighted mean outcome (posterior_epred)
#   tests/fixtures/<name>_stan_scalars.csv      posterior medians and sds of the model's scalars
# Run from the repository root:
#   Rscript bench/r_stan_hsb.R tests/fixtures/hsb_sim [DIR/hsb82]
start <- proc.time()[["elapsed"]]
suppressPackageStartupMessages(library(rstanarm))
prefixes <- commandArgs(trailingOnly = TRUE)
out <- function(x) sprintf("%.15g", x)

run <- function(prefix) {
  name <- basename(prefix)
  d <- read.csv(paste0(prefix, "_survey.csv"))
  ps <- read.csv(paste0(prefix, "_frame.csv"))
  d$school <- as.character(d$school)
  ps$school <- as.character(ps$school)
  t0 <- proc.time()[["elapsed"]]
  fit <- stan_glmer(y ~ ses + sx + (1 + ses | school), family = gaussian, data = d, seed = 1, refresh = 0,
                    cores = 2)
  seconds <- proc.time()[["elapsed"]] - t0
  print(fit, digits = 3)
  ep <- posterior_epred(fit, newdata = ps)
  groups <- split(seq_len(nrow(ps)), ps$school)
  draws <- sapply(groups, function(i) ep[, i, drop = FALSE] %*% ps$N[i] / sum(ps$N[i]))
  write.csv(data.frame(school = names(groups), mean = out(colMeans(draws)), sd = out(apply(draws, 2, sd))),
            file.path("tests", "fixtures", paste0(name, "_stan_groups.csv")), row.names = FALSE)
  m <- as.matrix(fit)
  S <- as.matrix(fit, regex_pars = "^Sigma")
  sd0 <- sqrt(S[, "Sigma[school:(Intercept),(Intercept)]"])
  sd1 <- sqrt(S[, "Sigma[school:ses,ses]"])
  scalars <- data.frame(
    name = c("intercept", "ses", "sxMale", "sigma", "sd0", "sd1", "cor"),
    median = out(c(median(m[, "(Intercept)"]), median(m[, "ses"]), median(m[, "sxMale"]), median(m[, "sigma"]),
                   median(sd0), median(sd1), median(S[, "Sigma[school:ses,(Intercept)]"] / (sd0 * sd1)))),
    sd = out(c(sd(m[, "(Intercept)"]), sd(m[, "ses"]), sd(m[, "sxMale"]), sd(m[, "sigma"]), sd(sd0), sd(sd1),
               sd(S[, "Sigma[school:ses,(Intercept)]"] / (sd0 * sd1)))))
  write.csv(scalars, file.path("tests", "fixtures", paste0(name, "_stan_scalars.csv")), row.names = FALSE)
  data.frame(task = name, seconds = seconds, whole = proc.time()[["elapsed"]] - start, rows = nrow(d),
             R = R.version.string, rstanarm = as.character(packageVersion("rstanarm")), date = as.character(Sys.Date()))
}

times <- do.call(rbind, lapply(prefixes, run))
path <- "bench/r_stan_hsb_times.csv"
if (file.exists(path)) {
  old <- read.csv(path)
  times <- rbind(old[!old$task %in% times$task, ], times)
}
write.csv(times, path, row.names = FALSE)
print(times)
