"""The solver's ground floor: errors, validated arrays, configs, rotations and geometry (normals live here once).
Imports nothing of the other layers."""
