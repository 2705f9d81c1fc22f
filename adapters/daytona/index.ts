// Placeholder so the build's entry exists while the daytona adapter is written; replaced by it.
export {};
