# Reference fixtures for bayesln.frequentist, computed with R's metafor.
#
# Output: validation/fixtures/metafor_reference.json, read by tests/test_frequentist_metafor.py.
# CI never runs this script. Run from the repository root:
#
#   Rscript validation/metafor/reference.R
#
# Needs (Debian): r-base-core (>= 4.2), r-cran-metafor (3.8-1 was used), r-cran-jsonlite.
#
# Layout of the JSON file:
#   r_version, metafor_version, jsonlite_version, date, script   provenance
#   cases: list of objects, each with
#     id        unique case id (dataset_measure_method_test ...)
#     kind      "escalc" | "rma.mh" | "rma.peto" | "rma.uni" | "subgroup"
#     dataset   dataset name; source: where the counts come from
#     data      the input: study, ai, n1i, ci, n2i (+ year, subgroup where used)
#     call      the exact R call (a string; it is eval(parse())'d below, so it is what ran)
#     result    the numbers metafor returned (NA -> null)
#     and, where computed, predict / confint / confint_precise / weights / leave1out /
#     cumul, each with its own call string.
#
# Every call below is built as a string and evaluated, so the "call" recorded in the JSON
# is literally the code that produced the numbers. The data frame is always called `d`.
#
# Precision notes:
# * uniroot() in metafor uses tol = .Machine$double.eps^0.25 (~1.2e-4, absolute in tau^2)
#   for the Paule-Mandel estimator and for the Q-profile CI. bayesln re-implements R's
#   zeroin (Brent) with the same tolerance, so the default results agree to rounding.
#   `confint_precise` (and `tau2_precise` for PM) are the same computations with
#   control = list(tol = 1e-12): the mathematically exact values, also pinned.
# * REML is metafor's Fisher scoring (threshold 1e-5), which bayesln replicates step by step.

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
out_path <- file.path(repo_root, "validation", "fixtures", "metafor_reference.json")

# ---------------------------------------------------------------------------------------
# Data sets
# ---------------------------------------------------------------------------------------

mk <- function(study, ai, n1i, ci, n2i, year = NULL, subgroup = NULL) {
  d <- data.frame(study = as.character(study), ai = as.numeric(ai), n1i = as.numeric(n1i),
                  ci = as.numeric(ci), n2i = as.numeric(n2i), stringsAsFactors = FALSE)
  if (!is.null(year)) d$year <- as.numeric(year)
  if (!is.null(subgroup)) d$subgroup <- as.character(subgroup)
  d
}

datasets <- list()
sources <- list()

# Tacrolimus in lupus nephritis, induction phase, TAC arm vs all non-TAC arms (arm counts
# given in the project brief; Amudalapalli 2025's MMF 18/27 and IVCY 15/28 arms pooled to
# 33/55, Cochrane Handbook 23.3.4). Regimen of the TAC arm: liu2015 and bao2008 triple,
# the others duo. zhang_v_iv has no known year; 2006 is used here only for cumul().
datasets$tac_total <- mk(
  study = c("liu2015", "bao2008", "zheng2022", "zhang2006_iv", "zhang_v_iv", "amudalapalli2025"),
  ai = c(151, 18, 117, 16, 14, 17), n1i = c(181, 20, 141, 17, 15, 27),
  ci = c(114, 9, 93, 14, 8, 33), n2i = c(181, 20, 124, 17, 16, 55),
  year = c(2015, 2008, 2022, 2006, 2006, 2025),
  subgroup = c("triple", "triple", "duo", "duo", "duo", "duo"))
sources$tac_total <- "bayesln bundled tacrolimus_ln counts (total response), TAC vs pooled non-TAC arms"

datasets$tac_complete <- mk(
  study = c("liu2015", "bao2008", "mok2016", "zheng2022", "zhang2006_iv", "zhang_v_iv"),
  ai = c(83, 10, 46, 70, 11, 4), n1i = c(181, 20, 74, 141, 17, 15),
  ci = c(46, 1, 45, 45, 7, 1), n2i = c(181, 20, 76, 124, 17, 16),
  year = c(2015, 2008, 2016, 2022, 2006, 2006),
  subgroup = c("triple", "triple", "duo", "duo", "duo", "duo"))
sources$tac_complete <- "bayesln bundled tacrolimus_ln counts (complete response), TAC vs non-TAC arm"

datasets$tac_triple_total <- datasets$tac_total[datasets$tac_total$subgroup == "triple", ]
sources$tac_triple_total <- "bayesln bundled tacrolimus_ln counts (total response), triple-therapy TAC trials"

datasets$bcg <- with(dat.bcg, mk(
  study = paste(author, year), ai = tpos, n1i = tpos + tneg, ci = cpos, n2i = cpos + cneg,
  year = year, subgroup = alloc))
sources$bcg <- "metafor::dat.bcg (metadat), ai = tpos, n1i = tpos + tneg, ci = cpos, n2i = cpos + cneg"

datasets$egger2001 <- with(dat.egger2001, mk(study = paste(study, year), ai = ai, n1i = n1i, ci = ci, n2i = n2i, year = year))
sources$egger2001 <- "metafor::dat.egger2001 (magnesium, mortality; one single-zero study)"

datasets$nielweise2007 <- with(dat.nielweise2007, mk(
  study = paste(author, year), ai = ai, n1i = n1i, ci = ci, n2i = n2i, year = year))
sources$nielweise2007 <- "metafor::dat.nielweise2007 (single-zero studies and one double-zero study, Yucel 2004)"

y6 <- dat.yusuf1985[dat.yusuf1985$table == "6" & !is.na(dat.yusuf1985$ai), ]
datasets$yusuf1985_t6 <- with(y6, mk(study = paste(trial, id), ai = ai, n1i = n1i, ci = ci, n2i = n2i))
sources$yusuf1985_t6 <- "metafor::dat.yusuf1985, table 6, complete rows (three double-zero studies)"

c85 <- dat.collins1985a[!is.na(dat.collins1985a$b.xti) & !is.na(dat.collins1985a$b.xci), ]
datasets$collins1985a <- with(c85, mk(
  study = paste(trial, year), ai = b.xti, n1i = nti, ci = b.xci, n2i = nci, year = year))
sources$collins1985a <- "metafor::dat.collins1985a, outcome b (bleeding), studies with both counts"

# A heterogeneous simulated set (bayesln batch test data) where metafor's REML Fisher
# scoring does not converge with the default step and does with control=list(stepadj=0.5).
datasets$reml_hard <- mk(
  study = c("s0", "s1", "s2", "s3", "s4", "s5", "s6"),
  ai = c(19, 13, 49, 47, 43, 25, 17), n1i = c(82, 56, 142, 124, 146, 43, 47),
  ci = c(25, 30, 28, 61, 6, 13, 46), n2i = c(141, 172, 128, 164, 27, 28, 172))
sources$reml_hard <- "simulated counts (numpy default_rng(1)); REML needs stepadj < 1"
main_sets <- setdiff(names(datasets), "reml_hard")

for (dn in names(datasets)) stopifnot(!anyDuplicated(datasets[[dn]]$study))

# ---------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------

run <- function(call, d) eval(parse(text = call), envir = list2env(list(d = d), parent = globalenv()))

data_json <- function(d) {
  out <- list(study = d$study, ai = d$ai, n1i = d$n1i, ci = d$ci, n2i = d$n2i)
  if (!is.null(d$year)) out$year <- d$year
  if (!is.null(d$subgroup)) out$subgroup <- d$subgroup
  out
}

num <- function(x) { x <- as.numeric(x); x }

fit_json <- function(res) {
  out <- list(beta = num(res$beta), se = num(res$se), zval = num(res$zval), pval = num(res$pval),
              ci.lb = num(res$ci.lb), ci.ub = num(res$ci.ub), tau2 = num(res$tau2),
              I2 = num(res$I2), H2 = num(res$H2), QE = num(res$QE), QEp = num(res$QEp),
              k = res$k, yi = num(res$yi.f), vi = num(res$vi.f))
  if (!is.null(res$se.tau2)) out$se.tau2 <- num(res$se.tau2)
  if (!is.null(res$vt)) out$vt <- num(res$vt)
  if (!is.null(res$s2w)) out$s2w <- num(res$s2w)
  if (!is.null(res$k.yi)) out$k.yi <- res$k.yi
  out$ddf <- num(res$ddf)
  out$test <- res$test
  out$method <- res$method
  out
}

pred_json <- function(p) list(pred = num(p$pred), se = num(p$se), ci.lb = num(p$ci.lb),
                              ci.ub = num(p$ci.ub), pi.lb = num(p$pi.lb), pi.ub = num(p$pi.ub))

ci_json <- function(ci) {
  r <- ci$random
  list(tau2 = num(r["tau^2", ]), I2 = num(r["I^2(%)", ]), H2 = num(r["H^2", ]))
}

table_json <- function(x) {
  list(slab = as.character(x$slab), estimate = num(x$estimate), se = num(x$se),
       zval = num(if (!is.null(x$zval)) x$zval else x$tval), pval = num(x$pval),
       ci.lb = num(x$ci.lb), ci.ub = num(x$ci.ub), Q = num(x$Q), Qp = num(x$Qp),
       tau2 = if (is.null(x$tau2)) NULL else num(x$tau2), I2 = num(x$I2), H2 = num(x$H2))
}

cases <- list()
add_case <- function(case) cases[[length(cases) + 1L]] <<- case

# ---------------------------------------------------------------------------------------
# escalc: effect sizes and sampling variances (defaults and the zero-cell options)
# ---------------------------------------------------------------------------------------

for (dn in main_sets) {
  d <- datasets[[dn]]
  for (measure in c("RR", "OR", "RD")) {
    for (opt in c("", ", to=\"all\"", ", drop00=TRUE", ", add=0, to=\"none\"")) {
      if (opt == ", add=0, to=\"none\"" && any(c(d$ai, d$ci, d$n1i - d$ai, d$n2i - d$ci) == 0)) next
      call <- sprintf("escalc(measure=\"%s\", ai=ai, n1i=n1i, ci=ci, n2i=n2i, data=d%s)", measure, opt)
      es <- run(call, d)
      tag <- if (opt == "") "default" else if (grepl("all", opt)) "toall" else
        if (grepl("drop00", opt)) "drop00" else "add0"
      add_case(list(id = sprintf("%s_%s_escalc_%s", dn, measure, tag), kind = "escalc",
                    dataset = dn, source = sources[[dn]], measure = measure,
                    options = tag, data = data_json(d), call = call,
                    result = list(yi = num(es$yi), vi = num(es$vi))))
    }
  }
}

# ---------------------------------------------------------------------------------------
# Model fits
# ---------------------------------------------------------------------------------------

full_extras <- c("tac_total", "tac_complete", "tac_triple_total", "bcg")

for (dn in main_sets) {
  d <- datasets[[dn]]
  has_year <- !is.null(d$year)
  for (measure in c("RR", "OR", "RD")) {
    fits <- list(
      list(kind = "rma.mh", method = "MH", test = "z",
           call = sprintf("rma.mh(measure=\"%s\", ai=ai, n1i=n1i, ci=ci, n2i=n2i, data=d, slab=study)", measure)))
    if (measure == "OR") {
      fits[[length(fits) + 1L]] <- list(kind = "rma.peto", method = "PETO", test = "z",
           call = "rma.peto(ai=ai, n1i=n1i, ci=ci, n2i=n2i, data=d, slab=study)")
    }
    for (method in c("EE", "DL", "REML", "PM")) {
      for (test in c("z", "knha")) {
        fits[[length(fits) + 1L]] <- list(kind = "rma.uni", method = method, test = test,
          call = sprintf("rma(measure=\"%s\", ai=ai, n1i=n1i, ci=ci, n2i=n2i, data=d, slab=study, method=\"%s\", test=\"%s\")",
                         measure, method, test))
      }
    }
    for (f in fits) {
      res <- tryCatch(suppressWarnings(run(f$call, d)), error = function(e) e)
      id <- sprintf("%s_%s_%s_%s", dn, measure, f$method, f$test)
      case <- list(id = id, kind = f$kind, dataset = dn, source = sources[[dn]],
                   measure = measure, method = f$method, test = f$test,
                   data = data_json(d), call = f$call)
      if (inherits(res, "error")) {
        case$error <- conditionMessage(res)
        add_case(case)
        next
      }
      case$result <- fit_json(res)
      case$weights <- list(call = "weights(res)", value = num(weights(res)))
      if (f$kind == "rma.uni") {
        case$predict <- list(call = "predict(res)", value = pred_json(predict(res)))
        if (f$method != "EE") {
          ci <- tryCatch(confint(res), error = function(e) NULL)
          if (!is.null(ci)) case$confint <- list(call = "confint(res)", value = ci_json(ci))
          cip <- tryCatch(confint(res, control = list(tol = 1e-12)), error = function(e) NULL)
          if (!is.null(cip)) case$confint_precise <- list(call = "confint(res, control=list(tol=1e-12))",
                                                         value = ci_json(cip))
        }
        if (f$method == "PM") {
          call_p <- sub(")$", ", control=list(tol=1e-12))", f$call)
          rp <- suppressWarnings(run(call_p, d))
          case$tau2_precise <- list(call = call_p, value = num(rp$tau2))
        }
      }
      extras <- dn %in% full_extras ||
        (f$test == "z" && f$method %in% c("MH", "PETO", "REML")) ||
        (f$test == "knha" && f$method == "DL")
      if (extras) {
        l1 <- suppressWarnings(leave1out(res))
        case$leave1out <- list(call = "leave1out(res)", value = table_json(l1))
        if (has_year) {
          cu <- suppressWarnings(cumul(res, order = d$year))
          case$cumul <- list(call = "cumul(res, order=d$year)", value = table_json(cu))
        }
      }
      add_case(case)
    }
  }
}

# ---------------------------------------------------------------------------------------
# Zero-cell options (non-default add / to / drop00)
# ---------------------------------------------------------------------------------------

opt_specs <- list(
  list(dn = "nielweise2007", kind = "rma.uni", measure = "RR", method = "REML", opts = list(drop00 = TRUE),
       call = "rma(measure=\"RR\", ai=ai, n1i=n1i, ci=ci, n2i=n2i, data=d, slab=study, method=\"REML\", drop00=TRUE)"),
  list(dn = "nielweise2007", kind = "rma.uni", measure = "OR", method = "DL", opts = list(to = "all"),
       call = "rma(measure=\"OR\", ai=ai, n1i=n1i, ci=ci, n2i=n2i, data=d, slab=study, method=\"DL\", to=\"all\")"),
  list(dn = "yusuf1985_t6", kind = "rma.uni", measure = "OR", method = "EE", opts = list(drop00 = TRUE),
       call = "rma(measure=\"OR\", ai=ai, n1i=n1i, ci=ci, n2i=n2i, data=d, slab=study, method=\"EE\", drop00=TRUE)"),
  list(dn = "yusuf1985_t6", kind = "rma.uni", measure = "RD", method = "PM", opts = list(to = "all"),
       call = "rma(measure=\"RD\", ai=ai, n1i=n1i, ci=ci, n2i=n2i, data=d, slab=study, method=\"PM\", to=\"all\")"),
  list(dn = "yusuf1985_t6", kind = "rma.mh", measure = "RR", method = "MH", opts = list(to = "all"),
       call = "rma.mh(measure=\"RR\", ai=ai, n1i=n1i, ci=ci, n2i=n2i, data=d, slab=study, to=\"all\")"),
  list(dn = "yusuf1985_t6", kind = "rma.mh", measure = "OR", method = "MH", opts = list(drop00 = FALSE),
       call = "rma.mh(measure=\"OR\", ai=ai, n1i=n1i, ci=ci, n2i=n2i, data=d, slab=study, drop00=FALSE)"),
  list(dn = "nielweise2007", kind = "rma.peto", measure = "OR", method = "PETO", opts = list(drop00 = FALSE),
       call = "rma.peto(ai=ai, n1i=n1i, ci=ci, n2i=n2i, data=d, slab=study, drop00=FALSE)"),
  list(dn = "reml_hard", kind = "rma.uni", measure = "RR", method = "REML", opts = list(default = TRUE),
       call = "rma(measure=\"RR\", ai=ai, n1i=n1i, ci=ci, n2i=n2i, data=d, slab=study, method=\"REML\")"),
  list(dn = "reml_hard", kind = "rma.uni", measure = "RR", method = "REML",
       opts = list(reml_control = list(stepadj = 0.5)),
       call = "rma(measure=\"RR\", ai=ai, n1i=n1i, ci=ci, n2i=n2i, data=d, slab=study, method=\"REML\", control=list(stepadj=0.5))"))
for (s in opt_specs) {
  d <- datasets[[s$dn]]
  tag <- gsub("[^A-Za-z0-9]+", "_", paste(names(unlist(s$opts)), unlist(s$opts), sep = "_", collapse = "_"))
  case <- list(id = sprintf("%s_%s_%s_z_%s", s$dn, s$measure, s$method, tag), kind = s$kind,
               dataset = s$dn, source = sources[[s$dn]], measure = s$measure, method = s$method,
               test = "z", options = if (isTRUE(s$opts$default)) NULL else s$opts,
               data = data_json(d), call = s$call)
  res <- tryCatch(suppressWarnings(run(s$call, d)), error = function(e) e)
  if (inherits(res, "error")) {
    case$error <- conditionMessage(res)
    add_case(case)
    next
  }
  case$result <- fit_json(res)
  case$weights <- list(call = "weights(res)", value = num(weights(res)))
  if (s$kind == "rma.uni") {
    case$predict <- list(call = "predict(res)", value = pred_json(predict(res)))
  }
  add_case(case)
}

# ---------------------------------------------------------------------------------------
# Subgroup analyses: separate fits per subgroup, then the test of subgroup differences
#   rma(yi=estimate, sei=se, mods=~factor(subgroup), method="FE")  -> QM (df = G - 1)
# (for inverse-variance common-effect fits this equals the QM of
#  rma(yi, vi, mods=~factor(subgroup), method="EE") on the study data, also pinned).
# ---------------------------------------------------------------------------------------

sub_specs <- list(
  list(dn = "tac_total", measure = "RR"), list(dn = "tac_complete", measure = "RR"),
  list(dn = "bcg", measure = "RR"), list(dn = "tac_complete", measure = "OR"))
for (s in sub_specs) {
  d <- datasets[[s$dn]]
  groups <- unique(d$subgroup)
  for (m in list(c("MH", "z"), c("EE", "z"), c("DL", "z"), c("REML", "z"), c("PM", "z"),
                 c("REML", "knha"), c("DL", "knha"))) {
    method <- m[1]; test <- m[2]
    fit_call <- if (method == "MH") {
      sprintf("rma.mh(measure=\"%s\", ai=ai, n1i=n1i, ci=ci, n2i=n2i, data=d, subset=subgroup==g)", s$measure)
    } else {
      sprintf("rma(measure=\"%s\", ai=ai, n1i=n1i, ci=ci, n2i=n2i, data=d, subset=subgroup==g, method=\"%s\", test=\"%s\")",
              s$measure, method, test)
    }
    per <- list()
    est <- c(); ses <- c()
    for (g in groups) {
      env <- list2env(list(d = d, g = g), parent = globalenv())
      r <- suppressWarnings(eval(parse(text = fit_call), envir = env))
      per[[g]] <- fit_json(r)
      est <- c(est, r$beta); ses <- c(ses, r$se)
    }
    comp <- data.frame(estimate = est, se = ses, subgroup = groups)
    test_call <- "rma(yi=estimate, sei=se, mods=~factor(subgroup), method=\"FE\", data=comp)"
    rt <- eval(parse(text = test_call), envir = list2env(list(comp = comp), parent = globalenv()))
    case <- list(id = sprintf("%s_%s_subgroup_%s_%s", s$dn, s$measure, method, test), kind = "subgroup",
                 dataset = s$dn, source = sources[[s$dn]], measure = s$measure, method = method,
                 test = test, data = data_json(d), groups = groups,
                 call = paste0("for (g in unique(d$subgroup)) ", fit_call, "; then ", test_call),
                 result = list(subgroups = per, QM = num(rt$QM), QMdf = num(rt$QMdf[1]),
                               QMp = num(rt$QMp)))
    if (method == "EE" && test == "z") {
      mcall <- sprintf("rma(measure=\"%s\", ai=ai, n1i=n1i, ci=ci, n2i=n2i, data=d, mods=~factor(subgroup), method=\"EE\")", s$measure)
      rm <- run(mcall, d)
      case$moderator_test <- list(call = mcall, QM = num(rm$QM), QMdf = num(rm$QMdf[1]), QMp = num(rm$QMp),
                                  QE = num(rm$QE), QEp = num(rm$QEp))
    }
    add_case(case)
  }
}

# ---------------------------------------------------------------------------------------
# Write
# ---------------------------------------------------------------------------------------

out <- list(
  description = paste("Reference results from R metafor for bayesln.frequentist;",
                      "generated by validation/metafor/reference.R; tests read this file, CI never runs R."),
  r_version = R.version.string,
  metafor_version = as.character(packageVersion("metafor")),
  jsonlite_version = as.character(packageVersion("jsonlite")),
  date = format(Sys.time(), "%Y-%m-%d"),
  script = "validation/metafor/reference.R",
  cases = cases)

dir.create(dirname(out_path), showWarnings = FALSE, recursive = TRUE)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, na = "null", null = "null", pretty = FALSE),
           out_path)
cat(sprintf("wrote %d cases to %s\n", length(cases), out_path))
