# Times rstanarm::stan_glmer, as a whole process (library load, data, fit, posterior_epred), on the
# models of bench/bayes.py, and appends a row per task to bench/r_stan_glmer_times.csv.
# Run from the repository root, with ../shared beside it (needs r-cran-rstanarm):
#   Rscript bench/r_stan_glmer_times.R [article] [seven_5000] [case_5000]
# rstanarm runs its chains one after another unless options(mc.cores) says otherwise; set the
# environment variable MC_CORES=2 to run two at a time (recorded in the `cores` column).
start <- proc.time()[["elapsed"]]
suppressPackageStartupMessages(library(rstanarm))
cores <- as.integer(Sys.getenv("MC_CORES", "1"))
options(mc.cores = cores)
tasks <- commandArgs(trailingOnly = TRUE)
if (!length(tasks)) tasks <- c("article", "seven_5000", "case_5000")
loaded <- proc.time()[["elapsed"]] - start

cces <- function() read.csv("../shared/data/cces/cces_all_clean.csv")
sample_rows <- function() read.csv("tests/fixtures/cces_sample5000_rows.csv")$row
seven <- abortion ~ male + (1|state) + (1|eth) + (1|educ) + (1|age) + (1|educ:age) + (1|educ:eth) + (1|male:eth)
case_study <- abortion ~ (1|state) + (1|eth) + (1|educ) + male + (1|male:eth) + (1|educ:age) + (1|educ:eth) +
  repvote + factor(region)

run <- function(task) {
  t0 <- proc.time()[["elapsed"]]
  if (task == "article") {
    data <- read.csv("../shared/reference/seed_survey.csv")
    fit <- stan_glmer(response ~ (1|class), data = data, family = binomial, seed = 1, refresh = 0)
    epred <- posterior_epred(fit, newdata = data.frame(class = 1:5))
    estimate <- mean(epred %*% c(4000, 4000, 4000, 4000, 7000) / 23000)
  } else {
    d <- cces()[sample_rows(), ]
    ps <- read.csv("../shared/data/cces/poststrat_df.csv")
    if (task == "seven_5000") {
      fit <- stan_glmer(seven, data = d, family = binomial, seed = 1, refresh = 0)
    } else {
      sl <- read.csv("../shared/data/cces/statelevel_predictors.csv")
      d <- merge(d, sl, by = "state", sort = FALSE)
      ps <- merge(ps, sl, by = "state", sort = FALSE)
      fit <- stan_glmer(case_study, data = d, family = binomial, seed = 1, refresh = 0,
                        prior = normal(0, 1, autoscale = TRUE), prior_covariance = decov(scale = 0.5),
                        adapt_delta = 0.99)
    }
    epred <- posterior_epred(fit, newdata = ps)
    estimate <- mean(epred %*% ps$n / sum(ps$n))
  }
  seconds <- proc.time()[["elapsed"]] - t0 + loaded
  s <- summary(fit)
  sampler <- rstan::get_sampler_params(fit$stanfit, inc_warmup = FALSE)
  divergent <- sum(sapply(sampler, function(x) sum(x[, "divergent__"])))
  row <- data.frame(task = task, seconds = round(seconds, 1), cores = cores,
                    min_n_eff = min(s[, "n_eff"], na.rm = TRUE), max_rhat = max(s[, "Rhat"], na.rm = TRUE),
                    divergences = divergent, estimate = estimate, date = format(Sys.Date()),
                    machine = sprintf("%s, %d cores", R.version$platform, parallel::detectCores()))
  out <- "bench/r_stan_glmer_times.csv"
  write.table(row, out, sep = ",", row.names = FALSE, col.names = !file.exists(out), append = file.exists(out))
  print(row)
}
for (task in tasks) run(task)
