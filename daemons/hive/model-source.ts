// Moved to shared/ so the queen refuses a bad download source at POST too; kept here for its importers.
export { resolveModelSource, type ModelSource } from "../../shared/model-source.js";
