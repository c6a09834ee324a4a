# Reference fixtures for bayesln.frequentist.bias (small-study effects), computed with R's
# metafor: Egger's regression test (regtest), Begg and Mazumdar's rank correlation test
# (ranktest) and trim-and-fill (trimfill).
#
# Output: validation/fixtures/metafor_bias.json, read by tests/test_frequentist_bias.py.
# CI never runs this script. Run from the repository root:
#
#   Rscript validation/metafor/bias_reference.R
#
# Needs (Debian): r-base-core (>= 4.2), r-cran-metafor (3.8-1 was used), r-cran-jsonlite.
# Reads validation/metafor/bias_tacrolimus_contrasts.csv: the contrast tables that bayesln
# builds from the bundled tacrolimus_ln data (written with bayesln's own
# TrialData.contrasts(); tests/test_frequentist_bias.py checks that the CSV still equals what
# bayesln builds).
#
# Layout of the JSON file (imitates validation/fixtures/metafor_reference.json):
#   description, r_version, metafor_version, jsonlite_version, date, script   provenance
#   cases: list of objects, one per (data set, measure, fitted model), each with
#     id        <dataset>_<measure>_<METHOD>_<test>
#     dataset, source, measure, method, test
#     data      the input: study, ai, n1i, ci, n2i
#     call      the exact R call of the model fit `res` (a string; it is eval(parse())'d)
#     fit       beta, se, ci.lb, ci.ub, tau2, k, yi, vi, ni of `res`
#     regtest   list of {model, predictor, call, result: zval, pval, dfs, est, ci.lb, ci.ub,
#               and the moderator model's coefficients beta, se and tau2}
#     ranktest  {call, result: tau, pval, exact}; `exact` is whether cor.test() used the
#               exact null distribution of Kendall's statistic (computed by `exact_call`,
#               metafor's own ranktest() code up to the cor.test() call)
#     trimfill  list of {estimator, side (argument; null = metafor's default rule), call,
#               result: k0, se.k0, side, beta, se, zval, pval, ci.lb, ci.ub, tau2, k,
#               fill_yi, fill_vi (the filled-in studies, in metafor's order)} or {error}
#
# Every call is built as a string and evaluated, so the "call" recorded in the JSON is
# literally the code that produced the numbers. The data frame is always called `d`, the
# model fit `res`.

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
out_path <- file.path(repo_root, "validation", "fixtures", "metafor_bias.json")
csv_path <- file.path(repo_root, "validation", "metafor", "bias_tacrolimus_contrasts.csv")

# ---------------------------------------------------------------------------------------
# Data sets
# ---------------------------------------------------------------------------------------

mk <- function(study, ai, n1i, ci, n2i) {
  data.frame(study = as.character(study), ai = as.numeric(ai), n1i = as.numeric(n1i),
             ci = as.numeric(ci), n2i = as.numeric(n2i), stringsAsFactors = FALSE)
}

datasets <- list()
sources <- list()

datasets$bcg <- with(dat.bcg, mk(study = paste(author, year), ai = tpos, n1i = tpos + tneg,
                                 ci = cpos, n2i = cpos + cneg))
sources$bcg <- "metafor::dat.bcg (metadat), ai = tpos, n1i = tpos + tneg, ci = cpos, n2i = cpos + cneg (k = 13)"

datasets$egger2001 <- with(dat.egger2001, mk(study = paste(study, year), ai = ai, n1i = n1i, ci = ci, n2i = n2i))
sources$egger2001 <- "metafor::dat.egger2001 (magnesium and mortality after MI, k = 16; Bertschat 1989 has a zero cell)"

datasets$hine1989 <- with(dat.hine1989, mk(study = paste(study, source), ai = ai, n1i = n1i, ci = ci, n2i = n2i))
sources$hine1989 <- "metafor::dat.hine1989 (prophylactic lidocaine and mortality, k = 6)"

tac <- read.csv(csv_path, stringsAsFactors = FALSE)
for (dn in unique(tac$dataset)) {
  s <- tac[tac$dataset == dn, ]
  datasets[[dn]] <- mk(study = s$study, ai = s$events_t, n1i = s$n_t, ci = s$events_c, n2i = s$n_c)
}
sources$tac_total <- paste("bayesln bundled tacrolimus_ln, total_response, TAC vs pooled IVCY/MMF arms, induction",
                           "RCTs (validation/metafor/bias_tacrolimus_contrasts.csv, k = 6)")
sources$tac_all_total <- paste("bayesln bundled tacrolimus_ln, total_response, TAC vs every other arm, all phases",
                               "(validation/metafor/bias_tacrolimus_contrasts.csv, k = 7; chen2012 34/34 has a zero cell)")

# Simulated data with a small-study effect (log RR grows with 1/sqrt(n)). set.seed makes
# them reproducible, but the tests read the counts from the JSON, not from R's RNG.
sim <- function(k, seed, nmin, nmax) {
  set.seed(seed)
  n1i <- sample(nmin:nmax, k, replace = TRUE)
  n2i <- n1i + sample(-5:5, k, replace = TRUE)
  pc <- runif(k, 0.05, 0.3)
  lrr <- -0.1 + 2.5 / sqrt(n1i + n2i) + rnorm(k, 0, 0.1)
  pt <- pmin(pc * exp(lrr), 0.95)
  mk(study = sprintf("sim%02d", seq_len(k)), ai = rbinom(k, n1i, pt), n1i = n1i,
     ci = rbinom(k, n2i, pc), n2i = n2i)
}

d <- sim(20, 20240601, 12, 300)
d$ai[3] <- 0                        # a single-zero study
d$ai[7] <- 0; d$ci[7] <- 0          # a double-zero study (kept: to="only0", drop00=FALSE)
datasets$sim_zero <- d
sources$sim_zero <- "simulated (set.seed(20240601)), k = 20, one single-zero and one double-zero study"

d <- sim(15, 7, 20, 200)
d <- rbind(d, d[c(2, 5, 9), ])      # three studies repeated: ties in yi and vi
d$study <- sprintf("tie%02d", seq_len(nrow(d)))
datasets$sim_ties <- d
sources$sim_ties <- "simulated (set.seed(7)), k = 18, three identical 2x2 tables repeated (ties: normal approximation in ranktest)"

datasets$sim_large <- sim(60, 11, 15, 400)
sources$sim_large <- "simulated (set.seed(11)), k = 60 (no ties: exact Kendall distribution although k >= 50)"

for (dn in names(datasets)) stopifnot(!anyDuplicated(datasets[[dn]]$study))

# ---------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------

env_for <- function(...) list2env(list(...), parent = globalenv())
run <- function(call, env) eval(parse(text = call), envir = env)
num <- function(x) as.numeric(x)

data_json <- function(d) list(study = d$study, ai = d$ai, n1i = d$n1i, ci = d$ci, n2i = d$n2i)

fit_json <- function(res) list(beta = num(res$beta), se = num(res$se), zval = num(res$zval),
                               pval = num(res$pval), ci.lb = num(res$ci.lb), ci.ub = num(res$ci.ub),
                               tau2 = num(res$tau2), k = res$k, yi = num(res$yi), vi = num(res$vi),
                               ni = num(res$ni))

regtest_json <- function(rt) {
  f <- rt$fit
  out <- list(zval = num(rt$zval), pval = num(rt$pval), dfs = num(rt$dfs),
              est = num(rt$est), ci.lb = num(rt$ci.lb), ci.ub = num(rt$ci.ub))
  if (inherits(f, "rma")) {
    out$beta <- num(f$beta); out$se <- num(f$se); out$tau2 <- num(f$tau2)
  } else {
    cf <- coef(summary(f))
    out$beta <- num(cf[, 1]); out$se <- num(cf[, 2]); out$tau2 <- NULL
  }
  out
}

trimfill_json <- function(tf) {
  fill <- if (is.null(tf$fill)) rep(FALSE, tf$k) else tf$fill
  list(k0 = num(tf$k0), se.k0 = num(tf$se.k0), side = tf$side, estimator = tf$k0.est,
       beta = num(tf$beta), se = num(tf$se), zval = num(tf$zval), pval = num(tf$pval),
       ci.lb = num(tf$ci.lb), ci.ub = num(tf$ci.ub), tau2 = num(tf$tau2), k = tf$k,
       fill_yi = num(tf$yi[fill]), fill_vi = num(tf$vi[fill]))
}

# metafor 3.8-1's ranktest() up to its cor.test() call; "T" statistic = exact distribution
exact_call <- paste("{wi <- 1/res$vi; theta <- weighted.mean(res$yi, wi); vb <- 1/sum(wi);",
                    "yi.star <- (res$yi - theta)/sqrt(res$vi - vb);",
                    "names(cor.test(yi.star, res$vi, method=\"kendall\", exact=TRUE)$statistic) == \"T\"}")

cases <- list()
add_case <- function(case) cases[[length(cases) + 1L]] <<- case

# ---------------------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------------------

# every data set: REML (rma's default) with everything; a few data sets also DL, EE and
# REML with the Knapp-Hartung test (regtest and trimfill take method/test from the fit)
fit_specs <- list(c("REML", "z"))
extra_specs <- list(c("DL", "z"), c("EE", "z"), c("REML", "knha"))
extra_sets <- c("bcg", "egger2001", "sim_zero", "tac_total")

reg_specs <- list(c("rma", "sei"), c("rma", "ninv"), c("lm", "sei"), c("lm", "ninv"))
tf_specs <- list(c("L0", NA), c("R0", NA), c("L0", "left"), c("L0", "right"), c("R0", "left"), c("R0", "right"))

for (dn in names(datasets)) {
  d <- datasets[[dn]]
  specs <- if (dn %in% extra_sets) c(fit_specs, extra_specs) else fit_specs
  for (measure in c("RR", "OR")) {
    for (s in specs) {
      method <- s[1]; test <- s[2]
      fcall <- sprintf("rma(measure=\"%s\", ai=ai, n1i=n1i, ci=ci, n2i=n2i, data=d, method=\"%s\"%s)",
                       measure, method, if (test == "z") "" else sprintf(", test=\"%s\"", test))
      env <- env_for(d = d)
      res <- run(fcall, env)
      assign("res", res, envir = env)
      case <- list(id = sprintf("%s_%s_%s_%s", dn, measure, method, test), dataset = dn,
                   source = sources[[dn]], measure = measure, method = method, test = test,
                   data = data_json(d), call = fcall, fit = fit_json(res))
      case$regtest <- lapply(reg_specs, function(r) {
        rcall <- sprintf("regtest(res, model=\"%s\", predictor=\"%s\")", r[1], r[2])
        rt <- run(rcall, env)
        list(model = r[1], predictor = r[2], call = rcall, result = regtest_json(rt))
      })
      if (method == "REML" && test == "z") {
        rk <- run("ranktest(res)", env)
        case$ranktest <- list(call = "ranktest(res)", exact_call = exact_call,
                              result = list(tau = num(rk$tau), pval = num(rk$pval),
                                            exact = run(exact_call, env)))
      }
      tfs <- if (method == "REML" && test == "z") tf_specs else tf_specs[1:2]
      case$trimfill <- lapply(tfs, function(t) {
        tcall <- if (is.na(t[2])) sprintf("trimfill(res, estimator=\"%s\")", t[1]) else
          sprintf("trimfill(res, estimator=\"%s\", side=\"%s\")", t[1], t[2])
        tf <- tryCatch(suppressWarnings(run(tcall, env)), error = function(e) e)
        out <- list(estimator = t[1], side = if (is.na(t[2])) NULL else t[2], call = tcall)
        if (inherits(tf, "error")) out$error <- conditionMessage(tf) else out$result <- trimfill_json(tf)
        out
      })
      add_case(case)
    }
  }
}

# ---------------------------------------------------------------------------------------
# Effect sizes given directly (yi, vi): a set where REML Fisher scoring of the Egger
# meta-regression ends at a local maximum and metafor's ll0check sets tau^2 to 0 (metafor
# warns "Fisher scoring algorithm may have gotten stuck at a local maximum"). Found by a
# random search (numpy default_rng(0), trial 1148), values rounded to 6 decimals. No
# sample sizes, so no "ninv" predictor.
# ---------------------------------------------------------------------------------------

yivi_sets <- list(ll0check = data.frame(
  study = sprintf("s%d", 1:7),
  yi = c(-0.69566, -0.023444, 0.167002, -0.654978, -0.558075, 1.221395, -3.24628),
  vi = c(0.033541, 0.581677, 0.571324, 0.010621, 0.845989, 0.8094, 0.948881)))
sources$ll0check <- "effect sizes typed in (random search); regtest's REML meta-regression hits metafor's ll0check"

for (dn in names(yivi_sets)) {
  d <- yivi_sets[[dn]]
  fcall <- "rma(yi, vi, data=d)"
  env <- env_for(d = d)
  res <- run(fcall, env)
  assign("res", res, envir = env)
  case <- list(id = sprintf("%s_GEN_REML_z", dn), dataset = dn, source = sources[[dn]], measure = "GEN",
               method = "REML", test = "z", data = list(study = d$study, yi = d$yi, vi = d$vi),
               call = fcall, fit = fit_json(res))
  case$regtest <- lapply(reg_specs[c(1, 3)], function(r) {
    rcall <- sprintf("regtest(res, model=\"%s\", predictor=\"%s\")", r[1], r[2])
    rt <- suppressWarnings(run(rcall, env))
    list(model = r[1], predictor = r[2], call = rcall, result = regtest_json(rt))
  })
  rk <- run("ranktest(res)", env)
  case$ranktest <- list(call = "ranktest(res)", exact_call = exact_call,
                        result = list(tau = num(rk$tau), pval = num(rk$pval), exact = run(exact_call, env)))
  case$trimfill <- lapply(tf_specs, function(t) {
    tcall <- if (is.na(t[2])) sprintf("trimfill(res, estimator=\"%s\")", t[1]) else
      sprintf("trimfill(res, estimator=\"%s\", side=\"%s\")", t[1], t[2])
    tf <- tryCatch(suppressWarnings(run(tcall, env)), error = function(e) e)
    out <- list(estimator = t[1], side = if (is.na(t[2])) NULL else t[2], call = tcall)
    if (inherits(tf, "error")) out$error <- conditionMessage(tf) else out$result <- trimfill_json(tf)
    out
  })
  add_case(case)
}

# ---------------------------------------------------------------------------------------
# Write
# ---------------------------------------------------------------------------------------

out <- list(
  description = paste("Reference results from R metafor (regtest, ranktest, trimfill) for",
                      "bayesln.frequentist.bias; generated by validation/metafor/bias_reference.R;",
                      "tests read this file, CI never runs R."),
  r_version = R.version.string,
  metafor_version = as.character(packageVersion("metafor")),
  jsonlite_version = as.character(packageVersion("jsonlite")),
  date = format(Sys.time(), "%Y-%m-%d"),
  script = "validation/metafor/bias_reference.R",
  cases = cases)

dir.create(dirname(out_path), showWarnings = FALSE, recursive = TRUE)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, na = "null", null = "null", pretty = FALSE),
           out_path)
cat(sprintf("wrote %d cases to %s\n", length(cases), out_path))
