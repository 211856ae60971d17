# R's bootMer times on this machine, for bench/run.py. Run from the repository root:
#   Rscript bench/r_bootstrap_times.R
suppressPackageStartupMessages(library(lme4))
d <- read.csv("../shared/reference/seed_survey.csv"); d$class <- factor(d$class)
N <- c(4000, 4000, 4000, 4000, 7000)
m2 <- glmer(response ~ 1 + (1|class), data = d, family = binomial)
mrp_f <- function(x) weighted.mean(predict(x, newdata = data.frame(class = factor(1:5)), type = "response"), N)
set.seed(1)
t_article <- system.time(b <- bootMer(m2, FUN = mrp_f, nsim = 999, use.u = TRUE))["elapsed"]
cc <- read.csv("../shared/data/cces/cces_all_clean.csv")
ps <- read.csv("../shared/data/cces/poststrat_df.csv")
rows <- read.csv("tests/fixtures/cces_sample5000_rows.csv")$row
m7 <- glmer(abortion ~ male + (1|state) + (1|eth) + (1|educ) + (1|age) + (1|educ:age) + (1|educ:eth) + (1|male:eth),
            data = cc[rows, ], family = binomial)
cces_f <- function(x) weighted.mean(predict(x, newdata = ps, type = "response", allow.new.levels = TRUE), ps$n)
nsim <- 20  # 999 refits would take over an hour; the per-refit time is extrapolated
t_cces <- system.time(bootMer(m7, FUN = cces_f, nsim = nsim, use.u = TRUE))["elapsed"]
out <- data.frame(task = c("bootMer_article_999", "bootMer_cces5000_per_refit"),
                  seconds = c(t_article, t_cces / nsim), sd = c(sd(b$t), NA),
                  R = R.version.string, lme4 = as.character(packageVersion("lme4")), date = as.character(Sys.Date()))
write.csv(out, "bench/r_bootstrap_times.csv", row.names = FALSE)
print(out)
