"""Benchmark of OpenCleanRooms against moto's Clean Rooms mock; see bench/README.md. Run: python -m bench.run"""
