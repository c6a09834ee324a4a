# Reference fixtures for bayesln's core model, fitted with brms.
#
# Model (arm-based binomial-normal random-effects meta-analysis, the model that
# bayesln.hierarchy's core model implements):
#
#   events_ik ~ Binomial(n_ik, p_ik)
#   logit(p_ik) = mu_i + treat_ik * delta_i
#   mu_i        ~ Normal(0, 2.5)        independent study baselines (fixed effects)
#   delta_i     = d + tau * z_i,  z_i ~ Normal(0, 1)   (delta_i ~ N(d, tau))
#   d           ~ Normal(0, 2.5)        pooled log odds ratio
#   tau         ~ Half-Normal(0.5)      (brms truncates class-sd priors at 0)
#
# brms: events | trials(n) ~ 0 + study + treat + (0 + treat | study), binomial(logit).
# A multi-arm trial contributes one row per arm; every non-tacrolimus arm has treat = 0
# and shares the study's baseline mu_i (same as bayesln: every arm is its own binomial).
#
# Output: validation/fixtures/brms_core.json (read by tests/ marked r_reference).
# CI never runs this script. Run from the repository root:
#
#   Rscript validation/brms/reference_core.R
#
# Needs (Debian): r-cran-brms r-cran-rstan r-cran-posterior r-cran-jsonlite r-cran-metafor.
#
# Monte-Carlo standard errors: posterior::mcse_mean and posterior::mcse_quantile
# (Vehtari et al. 2021, rank-normalised split-chain ESS of the indicator I(x <= q));
# ESS: posterior::ess_bulk / ess_tail / ess_mean; Rhat: posterior::rhat (rank-normalised,
# split, folded). Quantiles: stats::quantile type 7 over all pooled post-warmup draws.

suppressPackageStartupMessages({
  library(brms)
  library(rstan)
  library(posterior)
  library(jsonlite)
  library(metafor)   # only for dat.bcg (package metadat)
})

# Debian's r-cran-bh is a virtual package without include/ (it depends on libboost-dev),
# so rstan's check for BH/include fails ("Boost not found"). Point rstan at the system
# Boost headers in that case.
if (!file.exists(rstan_options("boost_lib")) && dir.exists("/usr/include/boost")) {
  rstan_options(boost_lib = "/usr/include")
}

args <- commandArgs(trailingOnly = FALSE)
script_arg <- sub("^--file=", "", args[grep("^--file=", args)])
repo_root <- if (length(script_arg)) {
  normalizePath(file.path(dirname(script_arg), "..", ".."))
} else {
  getwd()
}
out_path <- file.path(repo_root, "validation", "fixtures", "brms_core.json")

SEED <- 20240611L
CHAINS <- 4L
ITER <- 6000L
WARMUP <- 1000L
ADAPT_DELTA <- 0.99
CORES <- as.integer(Sys.getenv("BRMS_CORES", "2"))
PROBS <- c(0.025, 0.05, 0.25, 0.5, 0.75, 0.95, 0.975)

PRIOR_STRINGS <- c(
  "prior(normal(0, 2.5), class = b)",
  "prior(normal(0, 0.5), class = sd)"
)
PRIORS <- do.call(c, lapply(PRIOR_STRINGS, function(s) eval(parse(text = s))))
FORMULA_STRING <- "events | trials(n) ~ 0 + study + treat + (0 + treat | study)"

# ---------------------------------------------------------------------------------
# Datasets (arm-level rows: study, arm, treat, events, n)
# ---------------------------------------------------------------------------------
arms <- function(rows) {
  df <- do.call(rbind, lapply(rows, function(r) {
    data.frame(study = r[[1]], arm = r[[2]], treat = as.integer(r[[3]]),
               events = as.integer(r[[4]]), n = as.integer(r[[5]]),
               stringsAsFactors = FALSE)
  }))
  df$study <- factor(df$study, levels = unique(df$study))
  df
}

# (1) bundled total response, induction RCTs (TAC vs control)
total_response <- arms(list(
  list("liu2015", "TAC", 1, 151, 181), list("liu2015", "IVCY", 0, 114, 181),
  list("bao2008", "TAC", 1, 18, 20), list("bao2008", "IVCY", 0, 9, 20),
  list("zheng2022", "TAC", 1, 117, 141), list("zheng2022", "IVCY", 0, 93, 124),
  list("zhang2006_iv", "TAC", 1, 16, 17), list("zhang2006_iv", "IVCY", 0, 14, 17),
  list("zhang_v_iv", "TAC", 1, 14, 15), list("zhang_v_iv", "IVCY", 0, 8, 16),
  list("amudalapalli2025", "TAC", 1, 17, 27), list("amudalapalli2025", "MMF", 0, 18, 27),
  list("amudalapalli2025", "IVCY", 0, 15, 28)
))

# (2) metafor's dat.bcg (Colditz et al. 1994): BCG vaccine vs control, TB cases
data("dat.bcg", package = "metadat", envir = environment())
bcg_rows <- list()
for (j in seq_len(nrow(dat.bcg))) {
  s <- sprintf("trial%02d", dat.bcg$trial[j])
  bcg_rows[[length(bcg_rows) + 1]] <- list(s, "vaccine", 1, dat.bcg$tpos[j],
                                           dat.bcg$tpos[j] + dat.bcg$tneg[j])
  bcg_rows[[length(bcg_rows) + 1]] <- list(s, "control", 0, dat.bcg$cpos[j],
                                           dat.bcg$cpos[j] + dat.bcg$cneg[j])
}
bcg <- arms(bcg_rows)

# (3a) bundled complete response (TAC vs control)
complete_rows <- list(
  list("liu2015", "TAC", 1, 83, 181), list("liu2015", "IVCY", 0, 46, 181),
  list("bao2008", "TAC", 1, 10, 20), list("bao2008", "IVCY", 0, 1, 20),
  list("mok2016", "TAC", 1, 46, 74), list("mok2016", "MMF", 0, 45, 76),
  list("zheng2022", "TAC", 1, 70, 141), list("zheng2022", "IVCY", 0, 45, 124),
  list("zhang2006_iv", "TAC", 1, 11, 17), list("zhang2006_iv", "IVCY", 0, 7, 17),
  list("zhang_v_iv", "TAC", 1, 4, 15), list("zhang_v_iv", "IVCY", 0, 1, 16)
)
complete_response <- arms(complete_rows)

# (3b) the same plus two artificial studies: a double-zero study and a one-zero-arm study
complete_response_zeros <- arms(c(complete_rows, list(
  list("dz", "TAC", 1, 0, 30), list("dz", "control", 0, 0, 30),
  list("z1", "TAC", 1, 0, 25), list("z1", "control", 0, 3, 25)
)))

datasets <- list(
  total_response = list(
    data = total_response,
    description = paste(
      "Bundled tacrolimus_ln total (complete + partial) renal response, induction RCTs;",
      "TAC arm treat=1, every other arm treat=0 (amudalapalli2025 keeps MMF and IVCY",
      "as two separate treat=0 rows)."
    )
  ),
  bcg = list(
    data = bcg,
    description = paste(
      "metafor/metadat dat.bcg (13 trials): vaccinated arm treat=1 with tpos events of",
      "tpos+tneg; control arm treat=0 with cpos events of cpos+cneg."
    )
  ),
  complete_response = list(
    data = complete_response,
    description = "Bundled tacrolimus_ln complete renal response, TAC (treat=1) vs control (treat=0)."
  ),
  complete_response_zeros = list(
    data = complete_response_zeros,
    description = paste(
      "complete_response plus two artificial studies: 'dz' 0/30 vs 0/30 (double zero)",
      "and 'z1' 0/25 vs 3/25 (zero events in the treated arm)."
    )
  )
)

# ---------------------------------------------------------------------------------
# Fit: compile once, then update(fit, newdata = ...) for the other datasets
# ---------------------------------------------------------------------------------
CALL_STRING <- paste0(
  "brm(formula = ", FORMULA_STRING, ", data = <dataset>, family = binomial(link = \"logit\"), ",
  "prior = c(", paste(PRIOR_STRINGS, collapse = ", "), "), ",
  "chains = ", CHAINS, ", iter = ", ITER, ", warmup = ", WARMUP, ", seed = ", SEED, ", ",
  "control = list(adapt_delta = ", ADAPT_DELTA, "), backend = \"rstan\")"
)

variable_summary <- function(draws, var) {
  m <- extract_variable_matrix(draws, var)   # iterations x chains
  x <- as.vector(m)
  qs <- stats::quantile(x, probs = PROBS, names = FALSE, type = 7)
  mcse_q <- vapply(PROBS, function(p) mcse_quantile(m, probs = p), numeric(1))
  names(qs) <- names(mcse_q) <- sprintf("q%s", formatC(100 * PROBS, format = "fg"))
  list(
    mean = mean(x),
    sd = stats::sd(x),
    quantiles = as.list(qs),
    mcse_mean = mcse_mean(m),
    mcse_sd = mcse_sd(m),
    mcse_quantiles = as.list(mcse_q),
    mcse_median = mcse_median(m),
    ess_bulk = ess_bulk(m),
    ess_tail = ess_tail(m),
    ess_mean = ess_mean(m),
    rhat = rhat(m)
  )
}

sampler_summary <- function(fit) {
  np <- nuts_params(fit)
  div <- np$Value[np$Parameter == "divergent__"]
  td <- np$Value[np$Parameter == "treedepth__"]
  max_td <- fit$fit@stan_args[[1]]$control$max_treedepth
  if (is.null(max_td)) max_td <- 10L
  list(
    divergences = as.integer(sum(div)),
    max_treedepth = as.integer(max_td),
    max_treedepth_hits = as.integer(sum(td >= max_td)),
    draws_per_chain = ITER - WARMUP,
    elapsed_seconds_summed_over_chains = as.list(colSums(rstan::get_elapsed_time(fit$fit)))
  )
}

results <- list()
fit <- NULL
for (name in names(datasets)) {
  dat <- datasets[[name]]$data
  message(sprintf("== %s: %d arms, %d studies", name, nrow(dat), nlevels(dat$study)))
  if (is.null(fit)) {
    fit <- brm(
      formula = bf(as.formula(FORMULA_STRING)), data = dat,
      family = binomial(link = "logit"), prior = PRIORS,
      chains = CHAINS, iter = ITER, warmup = WARMUP, seed = SEED, cores = CORES,
      control = list(adapt_delta = ADAPT_DELTA), backend = "rstan", refresh = 0
    )
    this_fit <- fit
  } else {
    this_fit <- update(
      fit, newdata = dat, recompile = FALSE,
      chains = CHAINS, iter = ITER, warmup = WARMUP, seed = SEED, cores = CORES,
      control = list(adapt_delta = ADAPT_DELTA), refresh = 0
    )
  }
  draws <- as_draws_array(this_fit, variable = c("b_treat", "sd_study__treat"))
  ps <- prior_summary(this_fit)
  results[[name]] <- list(
    description = datasets[[name]]$description,
    data = lapply(dat, function(col) if (is.factor(col)) as.character(col) else col),
    n_studies = nlevels(dat$study),
    n_arms = nrow(dat),
    d = variable_summary(draws, "b_treat"),
    tau = variable_summary(draws, "sd_study__treat"),
    sampler = sampler_summary(this_fit),
    prior_summary = data.frame(
      prior = ps$prior, class = ps$class, coef = ps$coef, group = ps$group,
      lb = ps$lb, ub = ps$ub, source = ps$source, stringsAsFactors = FALSE
    )
  )
  message(sprintf(
    "   d: median %.4f [%.4f, %.4f]   tau: median %.4f [%.4f, %.4f]   divergences %d",
    results[[name]]$d$quantiles$q50, results[[name]]$d$quantiles$q2.5,
    results[[name]]$d$quantiles$q97.5, results[[name]]$tau$quantiles$q50,
    results[[name]]$tau$quantiles$q2.5, results[[name]]$tau$quantiles$q97.5,
    results[[name]]$sampler$divergences
  ))
}

out <- list(
  description = paste(
    "brms reference posteriors for bayesln's core arm-based binomial-normal",
    "random-effects model. d = b_treat (pooled log odds ratio, treat vs control);",
    "tau = sd_study__treat (between-study SD of the log odds ratio)."
  ),
  generated_by = "validation/brms/reference_core.R",
  date = format(Sys.time(), "%Y-%m-%dT%H:%M:%S%z"),
  model = list(
    formula = FORMULA_STRING,
    family = "binomial(link = \"logit\")",
    priors = PRIOR_STRINGS,
    brms_call = CALL_STRING,
    reuse = "first dataset compiled with brm(); others fitted with update(fit, newdata = <dataset>, recompile = FALSE) and the same sampling arguments",
    parameter_map = list(b_treat = "d", sd_study__treat = "tau",
                         "b_study<s>" = "mu_i (study baseline log odds)"),
    stancode = as.character(stancode(fit))
  ),
  sampling = list(
    chains = CHAINS, iter = ITER, warmup = WARMUP, seed = SEED,
    adapt_delta = ADAPT_DELTA, backend = "rstan", algorithm = "NUTS",
    draws_total = CHAINS * (ITER - WARMUP)
  ),
  summary_methods = list(
    quantiles = "stats::quantile(type = 7) of pooled post-warmup draws",
    mcse_mean = "posterior::mcse_mean",
    mcse_sd = "posterior::mcse_sd",
    mcse_quantiles = "posterior::mcse_quantile (one per probability)",
    mcse_median = "posterior::mcse_median",
    ess = "posterior::ess_bulk, ess_tail, ess_mean",
    rhat = "posterior::rhat (rank-normalised split-Rhat, max of bulk and folded)"
  ),
  versions = list(
    R = R.version.string,
    brms = as.character(packageVersion("brms")),
    rstan = as.character(packageVersion("rstan")),
    stan = rstan::stan_version(),
    posterior = as.character(packageVersion("posterior")),
    metafor = as.character(packageVersion("metafor")),
    metadat = as.character(packageVersion("metadat")),
    jsonlite = as.character(packageVersion("jsonlite")),
    platform = R.version$platform
  ),
  datasets = results
)

dir.create(dirname(out_path), recursive = TRUE, showWarnings = FALSE)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE, dataframe = "columns"),
           out_path)
message("wrote ", out_path)
