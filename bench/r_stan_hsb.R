# rstanarm::stan_glmer on the continuous-covariate slope model of bench/bayes_continuous.py:
#   y ~ ses + sx + (1 + ses | school), gaussian, rstanarm's defaults, 4 chains, 2 at a time.
# Reads the survey and frame that `bench/bayes_continuous.py --write DIR` wrote, times the fit
# (stan_glmer alone, and the whole script), and writes, for each data set named:
#   bench/r_stan_hsb_times.csv       task, seconds (stan_glmer), whole (the script so far), versions
#   bench/r_stan_hsb_<name>.csv      per school: the posterior mean and sd of the frame-weighted
#                                    mean outcome (posterior_epred), and the model's scalars
# Run from the repository root:
#   Rscript bench/r_stan_hsb.R DIR sim [hsb82]
start <- proc.time()[["elapsed"]]
suppressPackageStartupMessages(library(rstanarm))
args <- commandArgs(trailingOnly = TRUE)
dir <- args[1]
names <- args[-1]
out <- function(x) sprintf("%.15g", x)

run <- function(name) {
  d <- read.csv(file.path(dir, paste0(name, "_survey.csv")))
  ps <- read.csv(file.path(dir, paste0(name, "_frame.csv")))
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
            file.path("bench", paste0("r_stan_hsb_", name, ".csv")), row.names = FALSE)
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
  write.csv(scalars, file.path("bench", paste0("r_stan_hsb_", name, "_scalars.csv")), row.names = FALSE)
  data.frame(task = name, seconds = seconds, whole = proc.time()[["elapsed"]] - start, rows = nrow(d),
             R = R.version.string, rstanarm = as.character(packageVersion("rstanarm")), date = as.character(Sys.Date()))
}

times <- do.call(rbind, lapply(names, run))
path <- "bench/r_stan_hsb_times.csv"
if (file.exists(path)) {
  old <- read.csv(path)
  times <- rbind(old[!old$task %in% times$task, ], times)
}
write.csv(times, path, row.names = FALSE)
print(times)
