# brms / Stan reference timings for benchmarks/perf.py (issue 9 targets).
#
# The same model and data as the main analysis (models/total_response.toml): bayesln's
# core model (arm-based binomial-normal random effects, independent study baselines
# mu_i ~ N(0, 2.5), delta_i ~ N(d, tau), d ~ N(0, 2.5), tau ~ half-normal(0.5)) on the
# bundled total-response data, induction RCTs (6 trials, 13 arms), exported by
# `python benchmarks/perf.py --export-data` to benchmarks/results/total_response_arms.csv
# (the arms of the fitted Design: study, arm, treat, events, n).
#
#   brm(events | trials(n) ~ 0 + study + treat + (0 + treat | study), family = binomial,
#       prior = c(prior(normal(0, 2.5), class = b), prior(normal(0, 0.5), class = sd)),
#       chains = 4, iter = 2000, warmup = 1000, control = list(adapt_delta = 0.99),
#       cores = 2, backend = "rstan")
#
# (the formula and priors of validation/brms/reference_core.R; the sampler settings of the
# main analysis spec: 4 chains x 1000 draws after 1000 warm-up, adapt_delta 0.99).
#
# Measured (REPS repetitions each, medians reported by perf.py):
#   * compile_plus_sample_s: wall time of the brm() call (Stan model translation, C++
#     compilation, sampling, brms post-processing), each in a fresh R process (within one
#     session brms/rstan reuse the compiled model); process_s: that whole Rscript process
#     (R start, library loading, data, brm());
#   * sample_s: wall time of update(fit, recompile = FALSE, seed = ...) (sampling only,
#     4 chains on `cores` cores), and Stan's own per-chain warmup + sampling times;
#   * min bulk ESS over b_treat (d) and sd_study__treat (tau) (posterior::ess_bulk) and
#     ESS per second = min bulk ESS / sample_s (wall).
#
# Output: benchmarks/results/brms_reference.json (pinned; perf.py never runs R).
# Run from the repository root:  Rscript benchmarks/brms_reference.R   (~5-8 min)

suppressPackageStartupMessages({
  library(brms)
  library(rstan)
  library(posterior)
  library(jsonlite)
})

if (!file.exists(rstan_options("boost_lib")) && dir.exists("/usr/include/boost")) {
  rstan_options(boost_lib = "/usr/include")
}
rstan_options(auto_write = FALSE)

args <- commandArgs(trailingOnly = FALSE)
script_arg <- sub("^--file=", "", args[grep("^--file=", args)])
repo_root <- if (length(script_arg)) normalizePath(file.path(dirname(script_arg), "..")) else getwd()
csv_path <- file.path(repo_root, "benchmarks", "results", "total_response_arms.csv")
out_path <- file.path(repo_root, "benchmarks", "results", "brms_reference.json")

REPS <- as.integer(Sys.getenv("BRMS_REPS", "3"))
CORES <- as.integer(Sys.getenv("BRMS_CORES", "2"))
SEED <- 20261122L
CHAINS <- 4L
ITER <- 2000L
WARMUP <- 1000L
ADAPT_DELTA <- 0.99
FORMULA_STRING <- "events | trials(n) ~ 0 + study + treat + (0 + treat | study)"
PRIORS <- c(prior(normal(0, 2.5), class = b), prior(normal(0, 0.5), class = sd))

dat <- read.csv(csv_path, stringsAsFactors = FALSE)
dat$study <- factor(dat$study, levels = unique(dat$study))

ess_of <- function(fit) {
  dr <- as_draws_array(fit, variable = c("b_treat", "sd_study__treat"))
  s <- summarise_draws(dr, ess_bulk = ess_bulk, rhat = rhat)
  list(ess_bulk = setNames(as.list(s$ess_bulk), s$variable), rhat = setNames(as.list(s$rhat), s$variable),
       min_ess_bulk = min(s$ess_bulk))
}
divergences <- function(fit) {
  sp <- rstan::get_sampler_params(fit$fit, inc_warmup = FALSE)
  sum(sapply(sp, function(x) sum(x[, "divergent__"])))
}
stan_times <- function(fit) {
  et <- rstan::get_elapsed_time(fit$fit)
  list(warmup_summed_over_chains = sum(et[, "warmup"]), sample_summed_over_chains = sum(et[, "sample"]),
       max_chain_total = max(rowSums(et)))
}
load1 <- function() as.numeric(strsplit(readLines("/proc/loadavg"), " ")[[1]][1:3])

fit_brm <- function(seed) {
  brm(as.formula(FORMULA_STRING), data = dat, family = binomial(link = "logit"), prior = PRIORS,
      chains = CHAINS, iter = ITER, warmup = WARMUP, control = list(adapt_delta = ADAPT_DELTA),
      cores = CORES, seed = seed, backend = "rstan", refresh = 0, silent = 2)
}

# One cold brm() per fresh R process: within a session rstan/brms reuse the compiled
# model, so a second brm() in the same session would not compile.
if ("--cold-one" %in% commandArgs(trailingOnly = TRUE)) {
  r <- as.integer(Sys.getenv("BRMS_REP", "1"))
  la <- load1()
  t <- system.time(fit <- fit_brm(SEED + r))[["elapsed"]]
  e <- ess_of(fit)
  cat("COLD:", toJSON(list(rep = r, compile_plus_sample_s = t, min_ess_bulk = e$min_ess_bulk, ess_bulk = e$ess_bulk,
                           divergences = divergences(fit), stan_elapsed = stan_times(fit), loadavg = la),
                      auto_unbox = TRUE, digits = NA), "\n")
  quit(save = "no", status = 0)
}

cold <- list()
for (r in seq_len(REPS)) {
  t_proc <- system.time(
    lines <- system2(file.path(R.home("bin"), "Rscript"), c(file.path(repo_root, "benchmarks", "brms_reference.R"), "--cold-one"),
                     stdout = TRUE, stderr = FALSE, env = paste0("BRMS_REP=", r))
  )[["elapsed"]]
  rec <- fromJSON(sub("^COLD: ", "", grep("^COLD:", lines, value = TRUE)[1]))
  rec$process_s <- t_proc
  cold[[r]] <- rec
  cat(sprintf("brm() rep %d (fresh R process): brm() %.1f s, whole process %.1f s\n", r, rec$compile_plus_sample_s, t_proc))
}

la <- load1()
t_first <- system.time(fit <- fit_brm(SEED))[["elapsed"]]
cat(sprintf("brm() in this session (compiles): %.1f s\n", t_first))
warm <- list()
for (r in seq_len(REPS)) {
  la <- load1()
  t <- system.time(
    f2 <- update(fit, recompile = FALSE, seed = SEED + 100L + r, refresh = 0, silent = 2, cores = CORES)
  )[["elapsed"]]
  e <- ess_of(f2)
  warm[[r]] <- list(rep = r, sample_s = t, min_ess_bulk = e$min_ess_bulk, ess_bulk = e$ess_bulk, rhat = e$rhat,
                    ess_per_s = e$min_ess_bulk / t, divergences = divergences(f2), stan_elapsed = stan_times(f2),
                    loadavg = la)
  cat(sprintf("update() rep %d: %.1f s, min bulk ESS %.0f, %.0f ESS/s\n", r, t, e$min_ess_bulk, e$min_ess_bulk / t))
}

med <- function(xs, k) median(sapply(xs, function(x) x[[k]]))
cpu <- tryCatch({
  l <- grep("^model name", readLines("/proc/cpuinfo"), value = TRUE)[1]
  trimws(sub("^model name\\s*:", "", l))
}, error = function(e) NA)
out <- list(
  generated_by = "benchmarks/brms_reference.R",
  date = format(Sys.time(), "%Y-%m-%dT%H:%M:%S%z"),
  call = paste0("brm(", FORMULA_STRING, ", data = <benchmarks/results/total_response_arms.csv>, ",
                "family = binomial(link = \"logit\"), prior = c(prior(normal(0, 2.5), class = b), ",
                "prior(normal(0, 0.5), class = sd)), chains = 4, iter = 2000, warmup = 1000, ",
                "control = list(adapt_delta = 0.99), cores = ", CORES, ", seed = <", SEED, " + rep>, backend = \"rstan\")"),
  warm_call = "update(fit, recompile = FALSE, seed = <20261222 + rep>, cores = CORES)",
  data = list(csv = "benchmarks/results/total_response_arms.csv", studies = nlevels(dat$study), arms = nrow(dat)),
  settings = list(chains = CHAINS, iter = ITER, warmup = WARMUP, adapt_delta = ADAPT_DELTA, cores = CORES, reps = REPS),
  versions = list(R = paste(R.version$major, R.version$minor, sep = "."),
                  brms = as.character(packageVersion("brms")), rstan = as.character(packageVersion("rstan")),
                  stan = rstan::stan_version(), posterior = as.character(packageVersion("posterior"))),
  machine = list(cpu = cpu, cores = parallel::detectCores(), os = paste(Sys.info()[["sysname"]], Sys.info()[["release"]])),
  median = list(compile_plus_sample_s = med(cold, "compile_plus_sample_s"), process_s = med(cold, "process_s"),
                sample_s = med(warm, "sample_s"),
                min_ess_bulk = med(warm, "min_ess_bulk"), ess_per_s = med(warm, "ess_per_s")),
  cold = cold,
  warm = warm
)
writeLines(toJSON(out, auto_unbox = TRUE, pretty = TRUE, digits = NA), out_path)
cat("wrote", out_path, "\n")
