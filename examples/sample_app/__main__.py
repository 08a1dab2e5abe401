from examples.sample_app.cli import main

main()
