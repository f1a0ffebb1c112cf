/**
 * Ink renders no live frames when it believes it runs in CI (is-in-ci reads CI and
 * CONTINUOUS_INTEGRATION once, when Ink is first imported): only the final frame reaches stdout.
 * Tests of live frames import this module before anything that imports Ink, so they see what a
 * terminal sees wherever they run.
 */
for (const key of ["CI", "CONTINUOUS_INTEGRATION"]) if (key in process.env) process.env[key] = "false";
