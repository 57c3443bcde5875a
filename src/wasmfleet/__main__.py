from wasmfleet.cli.main import main

main()
