# Reference fixtures for bayesln's network meta-analysis (bayesln/hierarchy/network.py),
# fitted with Stan (rstan), written independently of the PyMC implementation.
#
# Model: NICE DSU TSD2 (Dias et al. 2011, updated 2016) arm-based binomial/logit
# random-effects consistency model, Appendix program 1(c), with the multi-arm
# correction written as in TSD2: the relative effect of arm k (k >= 2) of study i is
#
#   delta_ik | delta_i2..delta_i,k-1 ~ Normal(d[t_ik] - d[t_i1] + sum_{j<k} w_ij / (k - 1),
#                                             tau^2 * k / (2 (k - 1)))
#   w_ij = delta_ij - (d[t_ij] - d[t_i1]),  w_i1 = 0
#
# (bayesln writes the same joint distribution with a Cholesky factor of the
# compound-symmetry matrix; here it is TSD2's conditional sequence, non-centred:
# delta_ik = mean_ik + sd_k * eta_ik, eta_ik ~ N(0, 1)).
#
#   r_ik ~ Binomial(n_ik, inv_logit(mu_i + delta_ik)),   delta_i1 = 0,  d[1] = 0
#
# Datasets (arm rows, treatment order and priors are written into the JSON):
#   smoking  - Hasselblad (1998) smoking cessation, metadat::dat.hasselblad1998, the TSD2 /
#              TSD4 example (24 studies, 4 treatments, two three-arm trials); TSD2 priors
#              mu_i, d_k ~ N(0, 100^2), tau ~ Uniform(0, 2).
#   tacrolimus_total_response - bayesln's bundled network for total renal response,
#              induction RCTs (IVCY reference; TAC duo, TAC triple, MMF; Amudalapalli 2025
#              is a three-arm trial; MSC/placebo is disconnected and not in the data);
#              bayesln's default priors mu_i, d_k ~ N(0, 2.5), tau ~ HalfNormal(0.5).
#
# Output: validation/network/network_reference.json (read by tests/test_network.py,
# marker r_reference). CI never runs this script. From the repository root:
#
#   Rscript validation/network/reference_network.R        # a few minutes; STAN_CORES=1
#
# Also stored, for information only (a different, frequentist contrast-based model, not
# expected to match within Monte-Carlo error): metafor::rma.mv on the smoking network
# (log odds ratios with the multi-arm covariance, random = ~ comp | study, rho = 1/2).

suppressPackageStartupMessages({
  library(rstan)
  library(posterior)
  library(jsonlite)
  library(metafor)
})

if (!file.exists(rstan_options("boost_lib")) && dir.exists("/usr/include/boost")) {
  rstan_options(boost_lib = "/usr/include")
}

args <- commandArgs(trailingOnly = FALSE)
script_arg <- sub("^--file=", "", args[grep("^--file=", args)])
repo_root <- if (length(script_arg)) normalizePath(file.path(dirname(script_arg), "..", "..")) else getwd()
out_path <- file.path(repo_root, "validation", "network", "network_reference.json")

SEED <- 20261123L
CHAINS <- 4L
ITER <- 12000L
WARMUP <- 2000L
ADAPT_DELTA <- 0.99
CORES <- as.integer(Sys.getenv("STAN_CORES", "2"))
PROBS <- c(0.025, 0.25, 0.5, 0.75, 0.975)

stan_code <- function(tau_prior) {
  tau_decl <- if (tau_prior == "uniform") "real<lower=0, upper=tau_par> tau;" else "real<lower=0> tau;"
  tau_lp <- if (tau_prior == "uniform") "tau ~ uniform(0, tau_par);" else "tau ~ normal(0, tau_par);"
  paste0("
data {
  int<lower=1> NS;                 // studies
  int<lower=2> NT;                 // treatments (1 = reference)
  int<lower=1> N;                  // arms, ordered by study, baseline arm first
  int<lower=1, upper=NS> study[N];
  int<lower=1, upper=NT> trt[N];
  int<lower=0> r[N];
  int<lower=1> n[N];
  int<lower=2> na[NS];             // arms per study
  int<lower=1> first[NS];          // index of the study's baseline arm
  real<lower=0> mu_sd;
  real<lower=0> d_sd;
  real<lower=0> tau_par;
}
parameters {
  vector[NS] mu;
  vector[NT - 1] d_raw;
  ", tau_decl, "
  vector[N - NS] eta;              // one per non-baseline arm
}
transformed parameters {
  vector[NT] d;
  vector[N] delta;
  d[1] = 0;
  d[2:NT] = d_raw;
  {
    int e = 0;
    for (i in 1:NS) {
      real sw = 0;
      int b = first[i];
      delta[b] = 0;
      for (k in 2:na[i]) {
        int a = b + k - 1;
        real md = d[trt[a]] - d[trt[b]] + sw / (k - 1);
        real sdk = tau * sqrt(k / (2.0 * (k - 1)));
        e += 1;
        delta[a] = md + sdk * eta[e];
        sw += delta[a] - (d[trt[a]] - d[trt[b]]);
      }
    }
  }
}
model {
  mu ~ normal(0, mu_sd);
  d_raw ~ normal(0, d_sd);
  ", tau_lp, "
  eta ~ normal(0, 1);
  for (j in 1:N) r[j] ~ binomial_logit(n[j], mu[study[j]] + delta[j]);
}
")
}

# --------------------------------------------------------------------------- datasets
data("dat.hasselblad1998", package = "metadat", envir = environment())
h <- dat.hasselblad1998
smoking_order <- c("no_contact", "self_help", "ind_counseling", "grp_counseling")
smoking <- data.frame(study = sprintf("s%02d", h$study), arm = h$trt, treatment = h$trt,
                      events = h$xi, n = h$ni, stringsAsFactors = FALSE)

tac_order <- c("ivcy", "mmf", "tac_duo", "tac_triple")
tac <- data.frame(
  study = c("liu2015", "liu2015", "bao2008", "bao2008", "zheng2022", "zheng2022",
            "zhang2006_iv", "zhang2006_iv", "zhang_v_iv", "zhang_v_iv",
            "amudalapalli2025", "amudalapalli2025", "amudalapalli2025"),
  arm = c("ivcy", "tac", "ivcy", "tac", "ivcy", "tac", "ivcy", "tac", "ivcy", "tac", "ivcy", "mmf", "tac"),
  treatment = c("ivcy", "tac_triple", "ivcy", "tac_triple", "ivcy", "tac_duo", "ivcy", "tac_duo",
                "ivcy", "tac_duo", "ivcy", "mmf", "tac_duo"),
  events = c(114, 151, 9, 18, 93, 117, 14, 16, 8, 14, 15, 18, 17),
  n = c(181, 181, 20, 20, 124, 141, 17, 17, 16, 15, 28, 27, 27),
  stringsAsFactors = FALSE
)

datasets <- list(
  smoking = list(data = smoking, order = smoking_order, tau_prior = "uniform", tau_par = 2,
                 mu_sd = 100, d_sd = 100,
                 priors = list(baseline = "normal(0, 100)", d = "normal(0, 100)", tau = "uniform(0, 2)"),
                 description = "Hasselblad (1998) smoking cessation (metadat::dat.hasselblad1998), TSD2/TSD4 example; events = abstinent at 6-12 months"),
  tacrolimus_total_response = list(data = tac, order = tac_order, tau_prior = "halfnormal", tau_par = 0.5,
                 mu_sd = 2.5, d_sd = 2.5,
                 priors = list(baseline = "normal(0, 2.5)", d = "normal(0, 2.5)", tau = "half_normal(0.5)"),
                 description = "bayesln tacrolimus_ln total renal response, induction RCTs, connected component of IVCY")
)

stan_data <- function(ds) {
  dat <- ds$data
  dat$t <- match(dat$treatment, ds$order)
  stopifnot(!anyNA(dat$t))
  studies <- unique(dat$study)
  dat$s <- match(dat$study, studies)
  # baseline arm first: lowest treatment number (TSD2 convention), then input order
  dat <- dat[order(dat$s, dat$t, seq_len(nrow(dat))), ]
  na <- as.integer(table(factor(dat$s, levels = seq_along(studies))))
  first <- as.integer(cumsum(c(1, na))[seq_along(na)])
  list(sd = list(NS = length(studies), NT = length(ds$order), N = nrow(dat), study = dat$s, trt = dat$t,
                 r = as.integer(dat$events), n = as.integer(dat$n), na = na, first = first,
                 mu_sd = ds$mu_sd, d_sd = ds$d_sd, tau_par = ds$tau_par),
       rows = dat)
}

summ <- function(m) {
  x <- as.vector(m)
  qs <- stats::quantile(x, probs = PROBS, names = FALSE, type = 7)
  mq <- vapply(PROBS, function(p) mcse_quantile(m, probs = p), numeric(1))
  names(qs) <- names(mq) <- sprintf("q%s", formatC(100 * PROBS, format = "fg"))
  list(mean = mean(x), sd = stats::sd(x), quantiles = as.list(qs), mcse_mean = mcse_mean(m), mcse_sd = mcse_sd(m),
       mcse_quantiles = as.list(mq), ess_bulk = ess_bulk(m), ess_tail = ess_tail(m), rhat = rhat(m))
}

compiled <- list()
results <- list()
for (name in names(datasets)) {
  ds <- datasets[[name]]
  sdat <- stan_data(ds)
  if (is.null(compiled[[ds$tau_prior]])) {
    compiled[[ds$tau_prior]] <- stan_model(model_code = stan_code(ds$tau_prior), model_name = paste0("tsd2_re_", ds$tau_prior))
  }
  message(sprintf("== %s: %d arms, %d studies", name, sdat$sd$N, sdat$sd$NS))
  fit <- sampling(compiled[[ds$tau_prior]], data = sdat$sd, chains = CHAINS, iter = ITER, warmup = WARMUP,
                  seed = SEED, cores = CORES, control = list(adapt_delta = ADAPT_DELTA), refresh = 0)
  dr <- as_draws_array(fit)
  params <- list()
  for (k in 2:length(ds$order)) {
    params[[paste0("d[", ds$order[k], "]")]] <- summ(extract_variable_matrix(dr, sprintf("d[%d]", k)))
  }
  # every pairwise log odds ratio d[k] - d[l]
  pairs <- list()
  dmat <- lapply(seq_along(ds$order), function(k) extract_variable_matrix(dr, sprintf("d[%d]", k)))
  for (l in 1:(length(ds$order) - 1)) for (k in (l + 1):length(ds$order)) {
    pairs[[paste0(ds$order[k], " vs ", ds$order[l])]] <- summ(dmat[[k]] - dmat[[l]])
  }
  params[["tau"]] <- summ(extract_variable_matrix(dr, "tau"))
  sp <- get_sampler_params(fit, inc_warmup = FALSE)
  results[[name]] <- list(
    description = ds$description,
    treatments = ds$order,
    reference = ds$order[1],
    priors = ds$priors,
    arms = lapply(seq_len(nrow(sdat$rows)), function(j) {
      r <- sdat$rows[j, ]
      list(study = r$study, arm = r$arm, treatment = r$treatment, events = r$events, n = r$n)
    }),
    parameters = params,
    pairwise = pairs,
    sampler = list(divergences = sum(sapply(sp, function(x) sum(x[, "divergent__"]))),
                   max_treedepth_hits = sum(sapply(sp, function(x) sum(x[, "treedepth__"] >= 10))),
                   draws_per_chain = ITER - WARMUP, chains = CHAINS)
  )
}

# --------------------------------------------------------------------------- metafor (information only)
hs <- dat.hasselblad1998
hs$trt <- factor(hs$trt, levels = smoking_order)
contr <- do.call(rbind, lapply(split(hs, hs$study), function(s) {
  s <- s[order(as.integer(s$trt)), ]
  b <- s[1, ]
  do.call(rbind, lapply(2:nrow(s), function(k) data.frame(study = b$study, base = as.character(b$trt),
    trt = as.character(s$trt[k]), ai = s$xi[k], n1i = s$ni[k], ci = b$xi, n2i = b$ni)))
}))
contr <- escalc(measure = "OR", ai = ai, n1i = n1i, ci = ci, n2i = n2i, data = contr)
# multi-arm covariance: shared control arm variance 1/c + 1/(n2 - c)
V <- diag(contr$vi)
for (s in unique(contr$study)) {
  idx <- which(contr$study == s)
  if (length(idx) > 1) {
    cv <- 1 / contr$ci[idx[1]] + 1 / (contr$n2i[idx[1]] - contr$ci[idx[1]])
    for (a in idx) for (b in idx) if (a != b) V[a, b] <- cv
  }
}
X <- sapply(smoking_order[-1], function(t) (contr$trt == t) - (contr$base == t))
contr$comp <- paste(contr$trt, contr$base, sep = "-")
mv <- rma.mv(contr$yi, V, mods = X, intercept = FALSE, random = ~ comp | study, rho = 1 / 2,
             struct = "CS", data = contr, method = "REML")
metafor_info <- list(
  call = "rma.mv(yi, V, mods = X, intercept = FALSE, random = ~ comp | study, rho = 1/2, struct = 'CS', method = 'REML') on baseline-vs-arm log odds ratios (escalc measure='OR'; multi-arm covariance from the shared baseline arm)",
  estimate = setNames(as.list(as.vector(coef(mv))), paste0("d[", smoking_order[-1], "]")),
  se = setNames(as.list(as.vector(mv$se)), paste0("d[", smoking_order[-1], "]")),
  tau = sqrt(mv$tau2),
  note = "frequentist normal-approximation contrast-based model: for orientation only, not a Monte-Carlo-error comparison"
)

out <- list(
  description = "Stan (rstan) reference posteriors for bayesln's arm-based network meta-analysis (NICE DSU TSD2 random-effects consistency model).",
  generated_by = "validation/network/reference_network.R",
  date = format(Sys.time(), "%Y-%m-%dT%H:%M:%S%z"),
  versions = list(R = paste(R.version$major, R.version$minor, sep = "."),
                  rstan = as.character(packageVersion("rstan")),
                  stan = paste(rstan::stan_version(), collapse = ""),
                  posterior = as.character(packageVersion("posterior")),
                  metafor = as.character(packageVersion("metafor")),
                  metadat = as.character(packageVersion("metadat"))),
  call = sprintf("sampling(stan_model(model_code = stan_code(<tau prior>)), data = <dataset>, chains = %d, iter = %d, warmup = %d, seed = %d, control = list(adapt_delta = %s))",
                 CHAINS, ITER, WARMUP, SEED, ADAPT_DELTA),
  quantile_rule = "stats::quantile type 7 over all pooled post-warmup draws; MCSE from posterior::mcse_mean / mcse_quantile",
  stan_code = list(uniform = stan_code("uniform"), halfnormal = stan_code("halfnormal")),
  datasets = results,
  metafor_smoking = metafor_info
)
writeLines(toJSON(out, auto_unbox = TRUE, pretty = TRUE, digits = NA), out_path)
message("wrote ", out_path)
