// Placeholder so the build's entry exists while the kubernetes adapter is written; replaced by it.
export {};
