# Reference for bayesln.checks' leave-one-study-out influence table: metafor's leave1out
# (REML random effects, log odds ratio) on two datasets.
#
# Output: validation/checks/leave1out_reference.json, read by tests/test_checks_loo.py.
# CI never runs this script. Run from the repository root:
#
#   Rscript validation/checks/leave1out_reference.R
#
# Needs (Debian): r-base-core (>= 4.2), r-cran-metafor (3.8-1 / metadat 1.2-0 were used),
# r-cran-jsonlite.
#
# Datasets
#   bcg             metafor's dat.bcg (Colditz et al. 1994): 13 trials of BCG vaccine against
#                   tuberculosis; treated = vaccinated (tpos / tpos + tneg), control =
#                   not vaccinated (cpos / cpos + cneg). Study ids "bcg01".."bcg13".
#   total_response  bayesln's bundled tacrolimus_ln data, total renal response, TAC vs
#                   comparator, induction RCTs (what models/total_response.toml fits); the
#                   three-arm Amudalapalli 2025 with its MMF and IVCY arms pooled (Cochrane
#                   Handbook 23.3.4, TrialData.contrasts(multi_arm = "pool")). The counts are
#                   written out below (and into the JSON) so the test needs no R.
#
# For each: the exact escalc / rma / leave1out calls (strings, eval(parse())'d, so the
# recorded call is what ran), the full-data REML fit (b = pooled log OR, se, tau2) and the
# leave1out table (estimate = pooled log OR without the study, se, tau2, I2, Q); the change
# from the full fit (estimate - b, tau2 - tau2_full) is added for convenience.
#
# The Bayesian influence table (binomial-normal model, independent baselines,
# tau ~ HalfNormal(0.5)) is not expected to equal these numbers: the test checks the
# direction of the change in the pooled log OR per study, the rank order of the changes
# and their rough size (see tests/test_checks_loo.py).

suppressPackageStartupMessages({
  library(metafor)
  library(jsonlite)
})

args <- commandArgs(trailingOnly = FALSE)
script_arg <- sub("^--file=", "", args[grep("^--file=", args)])
repo_root <- if (length(script_arg)) {
  normalizePath(file.path(dirname(script_arg), "..", ".."))
} else {
  getwd()
}
out_path <- file.path(repo_root, "validation", "checks", "leave1out_reference.json")

data(dat.bcg, package = "metadat")
bcg <- data.frame(study = sprintf("bcg%02d", dat.bcg$trial), author = dat.bcg$author, year = dat.bcg$year,
                  ai = dat.bcg$tpos, n1i = dat.bcg$tpos + dat.bcg$tneg,
                  ci = dat.bcg$cpos, n2i = dat.bcg$cpos + dat.bcg$cneg, stringsAsFactors = FALSE)

# bundled tacrolimus_ln, total_response, induction RCTs (TrialData.contrasts(..., multi_arm="pool"))
tr <- data.frame(
  study = c("liu2015", "bao2008", "zheng2022", "zhang2006_iv", "zhang_v_iv", "amudalapalli2025"),
  ai = c(151, 18, 117, 16, 14, 17), n1i = c(181, 20, 141, 17, 15, 27),
  ci = c(114, 9, 93, 14, 8, 33), n2i = c(181, 20, 124, 17, 16, 55),
  stringsAsFactors = FALSE)

num <- function(x) if (is.null(x)) NULL else unname(as.numeric(x))

run_case <- function(name, d, source) {
  esc_call <- "escalc(measure = \"OR\", ai = ai, n1i = n1i, ci = ci, n2i = n2i, data = d)"
  rma_call <- "rma(yi, vi, data = dat, method = \"REML\")"
  l1o_call <- "leave1out(fit)"
  dat <- eval(parse(text = esc_call))
  fit <- eval(parse(text = rma_call))
  l1o <- eval(parse(text = l1o_call))
  l1o <- as.data.frame(l1o)
  list(
    id = name,
    source = source,
    data = d[, c("study", "ai", "n1i", "ci", "n2i")],
    calls = list(escalc = esc_call, rma = rma_call, leave1out = l1o_call),
    full = list(b = num(fit$b), se = num(fit$se), tau2 = num(fit$tau2), i2 = num(fit$I2), k = fit$k),
    yi = num(dat$yi), vi = num(dat$vi),
    leave1out = list(
      omitted = d$study,
      estimate = num(l1o$estimate), se = num(l1o$se), tau2 = num(l1o$tau2), i2 = num(l1o$I2), q = num(l1o$Q),
      change = num(l1o$estimate - as.numeric(fit$b)), tau2_change = num(l1o$tau2 - fit$tau2)
    )
  )
}

cases <- list(
  run_case("bcg", bcg, "metadat::dat.bcg (metafor); study = sprintf('bcg%02d', trial)"),
  run_case("total_response", tr, "bayesln bundled tacrolimus_ln, total_response, induction RCTs, multi-arm pooled")
)

out <- list(
  description = "metafor leave1out (REML, log odds ratio) reference for bayesln.checks influence tables",
  generated_by = "validation/checks/leave1out_reference.R",
  r_version = R.version.string,
  metafor_version = as.character(packageVersion("metafor")),
  metadat_version = as.character(packageVersion("metadat")),
  jsonlite_version = as.character(packageVersion("jsonlite")),
  date = format(Sys.time(), "%Y-%m-%dT%H:%M:%S%z", tz = "UTC"),
  cases = cases
)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE, dataframe = "columns", na = "null"), out_path)
cat("wrote", out_path, "\n")
