// Bun's bare start-up: the baseline particle-boot is compared with.
